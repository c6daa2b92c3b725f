"""read and write as a model sees them: numbered lines, limits that say how to go on, fences gone."""

from __future__ import annotations

from pathlib import Path

import pytest

from looper_engine.config import ToolSettings
from looper_engine.protocol.calls import DoneCall, ReadCall, WriteCall
from looper_engine.tools import Workspace, execute


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "big.py").write_text("".join(f"value_{i} = {i}\n" for i in range(1, 914)))
    (root / "src" / "pkg" / "small.py").write_text("a = 1\nb = 2\nc = 3\n")
    (root / "src" / "pkg" / "helpers.py").write_text("def helper():\n    pass\n")
    (root / "README.md").write_text("# readme\n")
    (root / "blob.bin").write_bytes(b"\xff\xfe\x00\x01")
    return Workspace.attach(root)


async def test_read_numbers_lines(ws: Workspace) -> None:
    out = await execute(ReadCall(path="src/pkg/small.py"), ws, ToolSettings())
    assert out.ok and not out.truncated
    assert out.output == "    1 | a = 1\n    2 | b = 2\n    3 | c = 3"


async def test_read_caps_lines_and_says_how_to_read_on(ws: Workspace) -> None:
    out = await execute(ReadCall(path="src/pkg/big.py"), ws, ToolSettings(read_max_lines=200, output_cap_chars=100_000))
    lines = out.output.splitlines()
    assert out.ok and out.truncated
    assert lines[0] == "    1 | value_1 = 1"
    assert lines[199] == "  200 | value_200 = 200"
    assert lines[-1] == "[lines 1-200 of 913; next: <read>src/pkg/big.py:201-400</read>]"
    assert len(lines) == 201


async def test_read_character_cap_cuts_at_a_line_and_points_to_the_rest(ws: Workspace) -> None:
    out = await execute(ReadCall(path="src/pkg/big.py"), ws, ToolSettings(output_cap_chars=1000))
    assert out.truncated
    *body, note = out.output.splitlines()
    last = int(body[-1].split("|")[0])
    assert last < 200
    assert note == f"[lines 1-{last} of 913; next: <read>src/pkg/big.py:{last + 1}-{last + 200}</read>]"
    assert len("\n".join(body)) <= 1000


async def test_read_range(ws: Workspace) -> None:
    out = await execute(ReadCall(path="src/pkg/big.py", start=901, end=2000), ws, ToolSettings())
    lines = out.output.splitlines()
    assert out.ok
    assert lines[0] == "  901 | value_901 = 901"
    assert lines[-2] == "  913 | value_913 = 913"
    assert lines[-1] == "[lines 901-913 of 913]"

    middle = await execute(ReadCall(path="src/pkg/big.py", start=10, end=12), ws, ToolSettings())
    assert middle.output.splitlines()[:3] == ["   10 | value_10 = 10", "   11 | value_11 = 11", "   12 | value_12 = 12"]
    assert "next: <read>src/pkg/big.py:13-" in middle.output


async def test_read_range_past_end_or_backwards_is_explained(ws: Workspace) -> None:
    past = await execute(ReadCall(path="src/pkg/small.py", start=50, end=60), ws, ToolSettings())
    assert not past.ok and "has 3 lines" in past.output
    backwards = await execute(ReadCall(path="src/pkg/big.py", start=30, end=10), ws, ToolSettings())
    assert not backwards.ok and "end is before the start" in backwards.output


async def test_range_ignored_when_line_range_reads_off(ws: Workspace) -> None:
    settings = ToolSettings(line_range_reads=False)
    out = await execute(ReadCall(path="src/pkg/big.py", start=500, end=510), ws, settings)
    lines = out.output.splitlines()
    assert out.ok
    assert lines[0] == "    1 | value_1 = 1"
    assert "line-range reads are off" in out.output
    assert "<read>src/pkg/big.py:" not in out.output
    assert "sed -n '201,400p' src/pkg/big.py" in lines[-1]


async def test_read_missing_file_lists_similar_paths(ws: Workspace) -> None:
    out = await execute(ReadCall(path="src/pkg/smal.py"), ws, ToolSettings())
    assert not out.ok
    assert "not found" in out.output
    suggestions = [line.strip() for line in out.output.splitlines()[1:]]
    assert suggestions[0] == "src/pkg/small.py"
    assert len(suggestions) <= 10


async def test_read_folder_lists_it(ws: Workspace) -> None:
    out = await execute(ReadCall(path="src/pkg"), ws, ToolSettings())
    assert out.ok
    assert out.output.splitlines()[1:] == ["  big.py", "  helpers.py", "  small.py"]
    root = await execute(ReadCall(path="."), ws, ToolSettings())
    assert "  src/" in root.output.splitlines()


async def test_read_binary_and_empty_files(ws: Workspace) -> None:
    binary = await execute(ReadCall(path="blob.bin"), ws, ToolSettings())
    assert not binary.ok and "not a UTF-8 text file" in binary.output
    (ws.root / "empty.py").write_text("")
    empty = await execute(ReadCall(path="empty.py"), ws, ToolSettings())
    assert empty.ok and "empty" in empty.output


async def test_a_fenced_write_body_lands_without_fences_and_with_a_final_newline(ws: Workspace) -> None:
    from looper_engine.protocol.parser import parse_response

    reply = '<write path="src/new/deep/mod.py">\n```python\ndef f():\n    return 1\n```\n</write>'
    call = parse_response(reply).call
    out = await execute(call, ws, ToolSettings())
    written = (ws.root / "src" / "new" / "deep" / "mod.py").read_text()
    assert written == "def f():\n    return 1\n"
    assert out.ok and out.changed_files == ["src/new/deep/mod.py"]
    assert out.output == "created src/new/deep/mod.py: 22 bytes, 2 lines"


async def test_write_writes_the_body_as_given_fences_included(ws: Workspace) -> None:
    # fence stripping is the parser's job (and its switch); the tool never strips again
    body = "```\nx = 1\n```\n"
    out = await execute(WriteCall(path="src/pkg/small.py", content=body), ws, ToolSettings())
    assert out.ok and out.output.startswith("overwrote src/pkg/small.py")
    assert (ws.root / "src" / "pkg" / "small.py").read_text() == body


async def test_write_to_a_folder_is_refused(ws: Workspace) -> None:
    out = await execute(WriteCall(path="src/pkg", content="x"), ws, ToolSettings())
    assert not out.ok and "is a folder" in out.output


async def test_done_is_not_a_tool(ws: Workspace) -> None:
    with pytest.raises(ValueError):
        await execute(DoneCall(summary="fixed"), ws, ToolSettings())


async def test_unencodable_content_is_an_observation(ws: Workspace) -> None:
    out = await execute(WriteCall(path="odd.py", content="x = '\ud800'\n"), ws, ToolSettings())
    assert not out.ok and "UTF-8" in out.output
