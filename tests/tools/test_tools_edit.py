"""edit: exact first, then whitespace-tolerant, then fuzzy; never a guess between two places."""

from __future__ import annotations

from pathlib import Path

import pytest

from looper_engine.config import ToolSettings
from looper_engine.protocol.calls import EditCall
from looper_engine.tools import Workspace, execute

SOURCE = '''\
import math


class Circle:
    def __init__(self, radius):
        self.radius = radius

    def area(self):
        return math.pi * self.radius ** 2

    def perimeter(self):
        return 2 * math.pi * self.radius


class Square:
    def __init__(self, side):
        self.side = side

    def area(self):
        return self.side * self.side

    def describe(self):
        total = self.area()
        label = "square"
        return f"{label} with area {total}"
'''


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    (tmp_path / "shapes.py").write_text(SOURCE)
    return Workspace.attach(tmp_path)


def content(ws: Workspace) -> str:
    return (ws.root / "shapes.py").read_text()


async def edit(ws: Workspace, old: str, new: str, **settings: object) -> tuple[bool, str]:
    out = await execute(EditCall(path="shapes.py", old=old, new=new), ws, ToolSettings(**settings))
    if out.ok:
        assert out.changed_files == ["shapes.py"]
    else:
        assert out.changed_files == []
    return out.ok, out.output


async def test_exact_match_replaces_and_shows_context(ws: Workspace) -> None:
    ok, output = await edit(ws, "        return 2 * math.pi * self.radius\n", "        return math.tau * self.radius\n")
    assert ok
    assert content(ws) == SOURCE.replace("2 * math.pi", "math.tau")
    first, *context = output.splitlines()
    assert first == "edited shapes.py (exact match): line 12 replaced, now line 12"
    assert "   12 |         return math.tau * self.radius" in context
    assert context[-1].startswith("   15 |")


async def test_exact_match_in_several_places_is_refused_with_line_numbers(ws: Workspace) -> None:
    ok, output = await edit(ws, "    def area(self):\n", "    def area(self) -> float:\n")
    assert not ok
    assert "occurs 2 times" in output
    assert "line 8:" in output and "line 19:" in output
    assert content(ws) == SOURCE


async def test_whitespace_tolerant_match_reindents_new(ws: Workspace) -> None:
    old = "def describe(self):\n  total = self.area()\n  label  =  'x'"
    old = old.replace("'x'", '"square"')
    new = 'def describe(self):\n  total = self.area()\n  if total > 10:\n    label = "big square"\n  label = "square"'
    ok, output = await edit(ws, old, new)
    assert ok, output
    assert output.startswith("edited shapes.py (match ignoring whitespace): lines 22-24 replaced, now lines 22-26")
    assert content(ws).endswith(
        "    def describe(self):\n"
        "        total = self.area()\n"
        "        if total > 10:\n"
        '            label = "big square"\n'
        '        label = "square"\n'
        '        return f"{label} with area {total}"\n'
    )


async def test_fuzzy_match_tolerates_a_typo(ws: Workspace) -> None:
    old = "    def perimeter(self):\n        retrun 2 * math.pi * self.radius"
    new = "    def perimeter(self):\n        return math.tau * self.radius"
    ok, output = await edit(ws, old, new)
    assert ok, output
    assert "fuzzy match, similarity" in output and "lines 11-12 replaced" in output
    assert content(ws) == SOURCE.replace("2 * math.pi", "math.tau")


async def test_fuzzy_match_between_two_similar_places_is_refused(tmp_path: Path) -> None:
    store = (
        "class Users:\n    def save(self):\n        self.db.write(self.rows)\n        self.db.commit()\n\n\n"
        "class Orders:\n    def save(self):\n        self.db.write(self.rows)\n        self.db.commit()\n"
    )
    (tmp_path / "store.py").write_text(store)
    ws = Workspace.attach(tmp_path)
    old = "    def save(self):\n        self.db.wirte(self.rows)\n        self.db.commit()"
    out = await execute(EditCall(path="store.py", old=old, new="    def save(self):\n        pass"), ws, ToolSettings())
    assert not out.ok
    assert "close to 2 places" in out.output
    assert "lines 2-4" in out.output and "lines 8-10" in out.output
    assert (tmp_path / "store.py").read_text() == store


async def test_no_match_shows_closest_region(ws: Workspace) -> None:
    ok, output = await edit(ws, "    def volume(self):\n        return self.side ** 3", "x")
    assert not ok
    assert "was not found" in output
    assert "closest region is lines" in output
    assert "similarity" in output
    assert content(ws) == SOURCE


async def test_fuzzy_off_requires_exact_text(ws: Workspace) -> None:
    old = "    def perimeter(self):\n        retrun 2 * math.pi * self.radius"
    ok, output = await edit(ws, old, "x", fuzzy_edit=False)
    assert not ok and "exact match required" in output
    ok, output = await edit(ws, "def perimeter(self):\nreturn 2 * math.pi * self.radius", "x", fuzzy_edit=False)
    assert not ok
    assert content(ws) == SOURCE


async def test_empty_or_identical_old_is_explained(ws: Workspace) -> None:
    ok, output = await edit(ws, "  \n", "x = 1\n")
    assert not ok and "<old> block is empty" in output
    ok, output = await edit(ws, "import math\n", "import math\n")
    assert not ok and "identical" in output
    assert content(ws) == SOURCE


async def test_fences_in_old_and_new_are_stripped(ws: Workspace) -> None:
    ok, _ = await edit(ws, "```python\nimport math\n```", "```python\nimport math as m\n```")
    assert ok
    assert content(ws).startswith("import math as m\n\n")


async def test_edit_keeps_crlf_line_endings(tmp_path: Path) -> None:
    (tmp_path / "win.py").write_bytes(b"a = 1\r\nb = 2\r\nc = 3\r\n")
    ws = Workspace.attach(tmp_path)
    out = await execute(EditCall(path="win.py", old="b = 2\n", new="b = 20\n"), ws, ToolSettings())
    assert out.ok
    assert (tmp_path / "win.py").read_bytes() == b"a = 1\r\nb = 20\r\nc = 3\r\n"


async def test_edit_of_missing_file_suggests_paths(ws: Workspace) -> None:
    out = await execute(EditCall(path="shape.py", old="a", new="b"), ws, ToolSettings())
    assert not out.ok and "shapes.py" in out.output


async def test_fuzzy_finds_a_typo_in_a_large_file(tmp_path: Path) -> None:
    body = "".join(
        f"def handler_{i}(request):\n    payload = request.json()\n    return respond(payload, code={i})\n\n"
        for i in range(2500)
    )
    (tmp_path / "big.py").write_text(body)
    ws = Workspace.attach(tmp_path)
    old = "def handler_1234(request):\n    paylaod = request.json()\n    return respond(payload, code=1234)"
    new = "def handler_1234(request):\n    return respond({}, code=1234)"
    out = await execute(EditCall(path="big.py", old=old, new=new), ws, ToolSettings())
    assert out.ok, out.output
    assert "lines 4937-4939 replaced" in out.output
    text = (tmp_path / "big.py").read_text()
    assert "def handler_1234(request):\n    return respond({}, code=1234)\n\ndef handler_1235" in text
    assert text.count("paylaod") == 0 and text.count("payload = request.json()") == 2499


async def test_whitespace_match_in_several_places_is_refused(tmp_path: Path) -> None:
    body = "def a():\n    x = f( 1 )\n    return x\n\n\ndef b():\n    x = f( 1 )\n    return x\n"
    (tmp_path / "dup.py").write_text(body)
    ws = Workspace.attach(tmp_path)
    out = await execute(EditCall(path="dup.py", old="x = f(1)\nreturn x", new="return f(1)"), ws, ToolSettings())
    assert not out.ok
    assert "matches 2 places when whitespace is ignored" in out.output
    assert "lines 2-3" in out.output and "lines 7-8" in out.output
    assert (tmp_path / "dup.py").read_text() == body


async def test_old_longer_than_the_file_is_explained(ws: Workspace) -> None:
    ok, output = await edit(ws, "\n".join(f"line {i}" for i in range(40)), "x")
    assert not ok
    assert "<old> has 40 lines but the file has only" in output
