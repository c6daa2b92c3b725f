"""One tool call as a block: its arguments, then its result (exit code, duration, and the
output folded to a few lines; enter, `o` or a click unfolds it)."""

from __future__ import annotations

from typing import Any

from textual import events
from textual.binding import Binding
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static

from looper_engine.events import ToolResult
from looper_tui.format import clean_text, fmt_duration
from looper_tui.tcss import beside

PREVIEW_LINES = 6
ARG_LINES = 8
#: An unfolded output is still capped: the whole of it is in the store (history view).
EXPANDED_LINES = 2000


def _lines(text: str, limit: int) -> tuple[list[str], int]:
    lines = clean_text(text).rstrip("\n").split("\n") if text else []
    return lines[:limit], max(0, len(lines) - limit)


def call_arguments(call: dict[str, Any] | None) -> Content:
    """The call's arguments, readable: a command, a path and range, an edit as a diff."""
    if not call:
        return Content("")
    tool = call.get("tool")
    parts: list[Content] = []
    if tool == "bash":
        shown, more = _lines(call.get("command", ""), ARG_LINES)
        parts += [Content.assemble(("$ ", "$looper-tag bold"), line) for line in shown]
        if more:
            parts.append(Content(f"  … {more} more lines").stylize("$text-muted"))
    elif tool == "read":
        where = call.get("path", "")
        if call.get("start") is not None:
            end = call.get("end")
            where += f"  lines {call['start']}–{end if end is not None else 'end'}"
        parts.append(Content.assemble(("read ", "$text-muted"), where))
    elif tool == "write":
        shown, more = _lines(call.get("content", ""), ARG_LINES // 2)
        total = len(shown) + more
        parts.append(Content.assemble(("write ", "$text-muted"), call.get("path", ""), (f"  ({total} lines)", "$text-muted")))
        parts += [Content("  " + line).stylize("$success") for line in shown]
        if more:
            parts.append(Content(f"  … {more} more lines").stylize("$text-muted"))
    elif tool == "edit":
        parts.append(Content.assemble(("edit ", "$text-muted"), call.get("path", "")))
        for key, sign, style in (("old", "- ", "$error"), ("new", "+ ", "$success")):
            shown, more = _lines(call.get(key, ""), ARG_LINES // 2)
            parts += [Content(sign + line).stylize(style) for line in shown]
            if more:
                parts.append(Content(f"  … {more} more lines").stylize("$text-muted"))
    elif tool == "done":
        parts.append(Content.assemble(("done: ", "$success bold"), call.get("summary", "")))
    else:
        parts.append(Content(str(call)))
    return Content("\n").join(parts)


def result_title(result: ToolResult | None, tool: str | None) -> Content:
    if result is None:
        if tool == "done":
            return Content("finished").stylize("$success")
        return Content("running…").stylize("$primary")
    style = "$success" if result.ok else "$error"
    mark = "✓" if result.ok else "✗"
    bits = [mark]
    if result.exit_code is not None:
        bits.append(f"exit {result.exit_code}")
    bits.append(fmt_duration(result.duration_s))
    return Content(" ".join(bits)).stylize(style)


class ToolCallBlock(Static, can_focus=True):
    DEFAULT_CSS = beside(__file__)
    BINDINGS = [Binding("enter,o", "toggle", "Unfold output", show=False)]

    expanded: reactive[bool] = reactive(False)

    def __init__(self) -> None:
        super().__init__()
        self._signature: tuple[object, ...] | None = None
        self._call: dict[str, Any] | None = None
        self._tool: str | None = None
        self._target = ""
        self._problem: str | None = None
        self._result: ToolResult | None = None

    def sync(self, tool: str | None, target: str, call: dict[str, Any] | None, problem: str | None,
             result: ToolResult | None) -> None:
        signature = (tool, target, problem, id(result), result is None)
        if signature == self._signature:
            return
        self._signature = signature
        self._tool, self._target, self._call, self._problem, self._result = tool, target, call, problem, result
        self._draw()

    @property
    def has_output(self) -> bool:
        return self._result is not None and bool(self._result.output)

    def watch_expanded(self) -> None:
        if self._signature is not None:
            self._draw()

    def action_toggle(self) -> None:
        self.expanded = not self.expanded

    def on_click(self, event: events.Click) -> None:
        self.action_toggle()

    def _draw(self) -> None:
        if self._problem is not None:
            self.set_class(True, "-malformed")
            self.border_title = "malformed tool call"
            self.border_subtitle = "sent back to the model"
            self.update(Content(clean_text(self._problem)).stylize("$warning"))
            return
        result = self._result
        self.set_class(result is not None and not result.ok, "-failed")
        self.border_title = f"{self._tool} {self._target}".strip()
        self.border_subtitle = result_title(result, self._tool).plain
        parts = [call_arguments(self._call)]
        if result is not None:
            limit = EXPANDED_LINES if self.expanded else PREVIEW_LINES
            shown, more = _lines(result.output, limit)
            header = "output" if shown else "no output"
            if result.truncated:
                header += " (cut by the tool: head and tail kept)"
            parts.append(Content(f"── {header} ──").stylize("$text-muted"))
            parts += [Content(line) for line in shown]
            if more:
                hint = "enter or click unfolds" if not self.expanded else "the rest is in the history view"
                parts.append(Content(f"… {more} more lines ({hint})").stylize("$text-muted italic"))
            elif self.expanded and len(shown) > PREVIEW_LINES:
                parts.append(Content("(enter or click folds)").stylize("$text-muted italic"))
        self.update(Content("\n").join(parts))
