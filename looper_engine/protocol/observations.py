"""What the model is told when its output does not parse cleanly.

Every text here is short, says what was wrong, and shows the right form, because the
model reads it as the next observation and should be able to fix its reply from it alone.
"""

from __future__ import annotations

from collections.abc import Sequence

_EXAMPLE_PATH = "src/pkg/mod.py"

TOOL_FORMS: dict[str, str] = {
    "bash": "<bash>pytest -q tests/test_x.py</bash>",
    "read": f"<read>{_EXAMPLE_PATH}</read>  or a line range: <read>{_EXAMPLE_PATH}:100-200</read>",
    "write": '<write path="src/pkg/new.py">\n...the whole file...\n</write>',
    "edit": f'<edit path="{_EXAMPLE_PATH}"><old>exact text to replace</old><new>its replacement</new></edit>',
    "done": "<done>one-line summary</done>",
}
_READ_WHOLE = f"<read>{_EXAMPLE_PATH}</read>"


def tool_form(tool: str, *, line_range_reads: bool = True) -> str:
    """The one right form of `tool`, as shown in observations."""
    if tool == "read" and not line_range_reads:
        return _READ_WHOLE
    return TOOL_FORMS[tool]


def forms(*, line_range_reads: bool = True) -> str:
    """All five forms, one per line (the write form spans three), for prompts and notes."""
    return "\n".join(tool_form(t, line_range_reads=line_range_reads) for t in TOOL_FORMS)


FORMS: str = forms()


def clip(text: str, limit: int = 60) -> str:
    """Quote a piece of model output in a note without letting it swamp the note."""
    flat = text.replace("\n", "\\n")
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def no_call(*, line_range_reads: bool = True) -> str:
    return (
        "No tool call found. Reply with exactly one tool call, e.g. <bash>pytest -q</bash>. "
        "The tools:\n" + forms(line_range_reads=line_range_reads)
    )


def unknown_tags(names: Sequence[str], *, line_range_reads: bool = True) -> str:
    shown = ", ".join(f"<{n}>" for n in names[:3])
    verb = "is not a tool" if len(names) == 1 else "are not tools"
    return f"{shown} {verb}. Use exactly one of these:\n" + forms(line_range_reads=line_range_reads)


def wrong_case(name: str, *, line_range_reads: bool = True) -> str:
    tool = name.lower()
    return (
        f"<{name}> is not a tool: tag names are lowercase. "
        f"Use {tool_form(tool, line_range_reads=line_range_reads)}"
    )


def stray_closer(tool: str, *, line_range_reads: bool = True) -> str:
    return (
        f"Found </{tool}> with no <{tool}> before it. "
        f"Use {tool_form(tool, line_range_reads=line_range_reads)}"
    )


def unclosed(
    tool: str, *, inner: str | None = None, found: str | None = None, line_range_reads: bool = True
) -> str:
    instead = f"; you wrote </{found}> instead" if found else ""
    ending = (
        f"end the <{inner}> with </{inner}> and the {tool} with </{tool}>"
        if inner
        else f"end it with </{tool}>"
    )
    return (
        f"Your <{tool}> was not closed{instead}; {ending}. "
        f"Form: {tool_form(tool, line_range_reads=line_range_reads)}"
    )


def think_unclosed() -> str:
    return (
        "Your <think> was not closed, so everything after it counted as thinking and nothing ran. "
        "Close it with </think>, then write one tool call, e.g. <bash>pytest -q</bash>."
    )


def no_body(tool: str, *, line_range_reads: bool = True) -> str:
    return f"<{tool}/> has no body. Form: {tool_form(tool, line_range_reads=line_range_reads)}"


def empty_bash() -> str:
    return "Your <bash></bash> is empty; put one shell command inside, e.g. <bash>pytest -q</bash>."


def read_no_path(*, line_range_reads: bool = True) -> str:
    return f"Your <read> names no file. Form: {tool_form('read', line_range_reads=line_range_reads)}"


def read_several_lines(body: str) -> str:
    return f"<read> takes one path, not several lines ({clip(body)!r}). Read one file per turn: {_READ_WHOLE}"


def read_not_a_path(body: str) -> str:
    return f"The body of <read> must be a plain path, not {clip(body)!r}. Form: {_READ_WHOLE}"


def bad_range(path: str, spec: str) -> str:
    return (
        f"Bad line range {spec!r} in <read>{clip(path)}:{spec}</read>: lines are 1-based START-END "
        f"with START <= END, e.g. <read>{clip(path)}:10-40</read>; <read>{clip(path)}</read> reads it all."
    )


def ranges_off(path: str) -> str:
    return f"Line ranges are off here, so the whole of {clip(path)} was read. Use <read>{clip(path)}</read>."


def missing_path(tool: str) -> str:
    return f"<{tool}> needs a path attribute. Form: {tool_form(tool)}"


def edit_missing(parts: Sequence[str]) -> str:
    missing = " and ".join(f"<{p}>" for p in parts)
    return f"Your <edit> has no {missing}; an edit needs both. Form: {tool_form('edit')}"


def edit_duplicate(part: str) -> str:
    return (
        f"Your <edit> has more than one <{part}>; only the first was kept and the edit did not run. "
        f"Make one replacement per turn. Form: {tool_form('edit')}"
    )


def extra_calls(count: int) -> str:
    what = "call after it was" if count == 1 else f"{count} calls after it were"
    return f"Only your first tool call ran; the {what} ignored. Send one tool call per turn."
