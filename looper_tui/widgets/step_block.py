"""One step of the live transcript: its header, the model's output as it streams (tool tags
picked out), the tool call block and any loop alarm. Redrawn only when its step changed."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static

from looper_engine.episode_view import StepView
from looper_tui.format import highlight_xml
from looper_tui.state import loop_name
from looper_tui.tcss import beside
from looper_tui.widgets.tool_call import ToolCallBlock

#: Lines of a step's output drawn: its tail while it streams (so each frame redraws a few
#: lines, not the whole text), more once it is done; the history view has all of it.
STREAMING_LINES = 12
DONE_LINES = 40
#: Characters per drawn line at most, so one endless line cannot fill the screen.
LINE_CHARS = 160


def output_content(text: str, max_lines: int = DONE_LINES) -> Content:
    text = text.rstrip("\n")
    lines = text.split("\n")
    hidden = max(0, len(lines) - max_lines)
    tail = "\n".join(line if len(line) <= LINE_CHARS else line[:LINE_CHARS] + "…" for line in lines[-max_lines:])
    content = highlight_xml(tail, "$looper-reasoning")
    if not hidden:
        return content
    note = Content(f"… {hidden} earlier lines (all of them in the history view: h)\n").stylize("$text-muted italic")
    return note + content


class StepBlock(Vertical):
    DEFAULT_CSS = beside(__file__)

    def __init__(self, step: int) -> None:
        super().__init__(classes="step-block")
        self.step = step
        self._drawn: tuple[object, ...] | None = None
        self._header = Static(classes="step-header")
        self._output = Static(classes="step-output")
        self._call = ToolCallBlock()
        self._call.display = False
        self._alarms = Static(classes="step-alarms")
        self._alarms.display = False

    def compose(self) -> ComposeResult:
        yield self._header
        yield self._output
        yield self._call
        yield self._alarms

    def sync(self, s: StepView) -> None:
        signature = (s.chars, s.output_done, s.status, len(s.alarms), id(s.result), s.text_dropped)
        if signature == self._drawn:
            return
        self._drawn = signature
        header = Content.assemble((f"step {s.step}", "bold $primary"))
        if s.status in ("thinking", "parsing"):
            header += Content(f"  {s.status}…").stylize("$text-muted italic")
        self._header.update(header)
        if s.text_dropped:
            self._output.update(Content("(text kept in the history view)").stylize("$text-muted italic"))
        else:
            limit = DONE_LINES if s.output_done else STREAMING_LINES
            self._output.update(output_content(s.output, limit) if s.output else Content("…").stylize("$text-muted"))
        if s.tool is not None or s.problem is not None:
            self._call.display = True
            self._call.sync(s.tool, s.target, s.call, s.problem, s.result)
        if s.alarms:
            text = "\n".join(f"⚠ loop alarm: {loop_name(a.loop)} — {a.detail}" for a in s.alarms)
            self._alarms.update(Content(text).stylize("$looper-alarm bold"))
            self._alarms.display = True
        else:
            self._alarms.display = False

    def toggle_output(self) -> bool:
        if not self._call.display or not self._call.has_output:
            return False
        self._call.action_toggle()
        return True
