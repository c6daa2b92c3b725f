"""render_call is the exact inverse of the parser, and the parser survives any text."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parser_harness import parse_every_way

from looper_engine.protocol.calls import BashCall, DoneCall, EditCall, ReadCall, WriteCall
from looper_engine.protocol.parser import parse_response, render_call

PROPERTY = settings(
    derandomize=True, max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# Pieces that stress the grammar: tags, partial tags, fences, quotes, line breaks.
_PIECES = [
    "<",
    ">",
    "/",
    "`",
    "```",
    "```python\n",
    "\n```",
    "~~~",
    "\n",
    "\n\n",
    " ",
    "\t",
    "\r",
    "\r\n",
    ":",
    "-",
    "1",
    "20",
    '"',
    "'",
    "=",
    "x",
    "path",
    "a.py",
    "bash",
    "old",
    "new",
    "<bash>",
    "</bash>",
    "<read>",
    "</read>",
    '<write path="w">',
    "</write>",
    "<edit path='e'>",
    "</edit>",
    "<old>",
    "</old>",
    "<new>",
    "</new>",
    "<done>",
    "</done>",
    "<think>",
    "</think>",
    "<python>",
    "<Bash>",
    "List<int>",
    "a < b",
    "</",
    "<bash",
    "/>",
    "é",
    "\u2028",
]
tricky_text = st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=4)), max_size=25).map("".join)
# Bodies that are themselves a fenced block must survive the parser's fence stripping.
bodies = st.one_of(tricky_text, tricky_text.map(lambda s: f"```py\n{s}\n```"))
path_text = st.text(alphabet=st.sampled_from(list("abcXYZ019_./- :'\"`")), min_size=1, max_size=20)


def _call_strategy() -> st.SearchStrategy:
    lines = st.one_of(st.none(), st.integers(min_value=0, max_value=500))
    return st.one_of(
        st.builds(BashCall, command=bodies),
        st.builds(ReadCall, path=path_text, start=lines, end=lines),
        st.builds(WriteCall, path=path_text, content=bodies),
        st.builds(EditCall, path=path_text, old=bodies, new=bodies),
        st.builds(DoneCall, summary=tricky_text),
    )


def _path_ok(path: str) -> bool:
    quoted = len(path) >= 2 and path[0] == path[-1] and path[0] in "\"'`"
    return bool(path) and path == path.strip() and not quoted and not ('"' in path and "'" in path)


def _text_ok(value: str, closer: str) -> bool:
    return "\r" not in value and closer not in value


def _representable(call: object) -> bool | None:
    """Whether the language can express `call`; None where the test does not decide."""
    if isinstance(call, BashCall):
        return _text_ok(call.command, "</bash>") and bool(call.command.strip())
    if isinstance(call, WriteCall):
        return _path_ok(call.path) and _text_ok(call.content, "</write>")
    if isinstance(call, EditCall):
        return _path_ok(call.path) and _text_ok(call.old, "</old>") and _text_ok(call.new, "</new>")
    if isinstance(call, DoneCall):
        return _text_ok(call.summary, "</done>") and call.summary == call.summary.strip()
    assert isinstance(call, ReadCall)
    if call.start is not None and (call.start < 1 or (call.end is not None and call.end < call.start)):
        return False
    if call.start is None and call.end is not None:
        return False
    if not _path_ok(call.path):
        return None
    return True if ":" not in call.path else None


@PROPERTY
@given(_call_strategy())
def test_render_call_round_trips_through_the_streaming_parser(call: object) -> None:
    expected = _representable(call)
    try:
        text = render_call(call)  # type: ignore[arg-type]
    except ValueError:
        assert expected is not True, f"render_call refused a representable call: {call!r}"
        return
    assert expected is not False, f"render_call accepted an unrepresentable call: {call!r}"
    result = parse_every_way(text, seeds=1)
    assert result.call == call
    assert result.notes == [] and result.extra_calls == 0 and result.prose == ""


@PROPERTY
@given(_call_strategy(), st.sampled_from(["", "Let me check.\n", "Step 2: x < y.\n\n"]))
def test_rendered_calls_survive_surrounding_prose(call: object, lead: str) -> None:
    try:
        text = render_call(call)  # type: ignore[arg-type]
    except ValueError:
        return
    result = parse_response(f"{lead}{text}\nThat should do it.")
    assert result.call == call
    assert result.prose == f"{lead}\nThat should do it."


@pytest.mark.parametrize(
    "call",
    [
        BashCall(command="echo '</bash>'"),
        BashCall(command="   "),
        WriteCall(path="a.py", content="windows\r\nline"),
        WriteCall(path=" a.py", content="x"),
        WriteCall(path="a<b.py", content="x"),
        EditCall(path="a.py", old="</old>", new="x"),
        ReadCall(path="a.py", start=None, end=4),
        ReadCall(path="a.py", start=9, end=2),
        ReadCall(path="notes:1-2"),
        DoneCall(summary=" padded "),
    ],
)
def test_render_call_refuses_what_the_language_cannot_say(call: object) -> None:
    with pytest.raises(ValueError):
        render_call(call)  # type: ignore[arg-type]


def test_rendered_forms_are_readable() -> None:
    assert render_call(BashCall(command="pytest -q")) == "<bash>pytest -q</bash>"
    assert render_call(ReadCall(path="a.py", start=3, end=9)) == "<read>a.py:3-9</read>"
    assert render_call(WriteCall(path="a.py", content="x = 1\n")) == '<write path="a.py">\nx = 1\n\n</write>'
    assert render_call(EditCall(path="a.py", old="x = 1", new="x = 2")) == (
        '<edit path="a.py">\n<old>x = 1</old>\n<new>x = 2</new>\n</edit>'
    )
    assert render_call(DoneCall(summary="fixed")) == "<done>fixed</done>"


def test_content_that_is_itself_fenced_survives_fence_stripping() -> None:
    content = "```python\nprint('hi')\n```"
    text = render_call(WriteCall(path="snippet.md", content=content))
    assert parse_response(text).call == WriteCall(path="snippet.md", content=content)


@PROPERTY
@given(tricky_text)
def test_any_text_parses_the_same_in_any_chunking_and_never_drops_silently(text: str) -> None:
    for options in ({}, {"strip_fences": False, "line_range_reads": False}):
        result = parse_every_way(text, seeds=1, **options)
        if result.call is None or result.extra_calls:
            assert result.notes, "a turn that runs nothing, or ignores calls, must say why"
