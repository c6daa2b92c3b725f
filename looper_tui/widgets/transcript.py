"""The live transcript: per step, the model's output as it streams (tool tags picked out),
then the tool call as a block with its result, then any loop alarm.

Streamed text arrives in frame-sized batches and each batch redraws only the step it
belongs to. Only the newest steps stay mounted, so a long episode costs the same as a
short one; the timeline and the history view reach the older ones.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from looper_engine.episode_view import EpisodeView
from looper_tui.tcss import beside
from looper_tui.widgets.step_block import StepBlock

#: Steps kept on screen.
MAX_BLOCKS = 15


class Transcript(VerticalScroll):
    DEFAULT_CSS = beside(__file__)

    def __init__(self, id: str | None = None) -> None:  # noqa: A002 - Textual names it id
        super().__init__(id=id)
        self._blocks: dict[int, StepBlock] = {}
        self._episode: str | None = None
        self._note = Static(classes="transcript-note")
        self._intro = Static(classes="transcript-intro")

    def compose(self) -> ComposeResult:
        yield self._note
        yield self._intro

    def on_mount(self) -> None:
        self.anchor()
        self._note.display = False

    def sync(self, ep: EpisodeView) -> None:
        if ep.id != self._episode:
            self._episode = ep.id
            for block in self._blocks.values():
                block.remove()
            self._blocks = {}
            self.anchor()
        self._intro.update(self._intro_text(ep))
        recent = ep.steps[-MAX_BLOCKS:]
        keep = {s.step for s in recent}
        for number in [n for n in self._blocks if n not in keep]:
            self._blocks.pop(number).remove()
        hidden = len(ep.steps) - len(recent)
        self._note.display = hidden > 0
        if hidden:
            self._note.update(
                Content(f"… {hidden} earlier steps: see the timeline, or h for the history view").stylize(
                    "$text-muted italic"
                )
            )
        new_blocks: list[StepBlock] = []
        for s in recent:
            block = self._blocks.get(s.step)
            if block is None:
                block = self._blocks[s.step] = StepBlock(s.step)
                new_blocks.append(block)
            block.sync(s)
        if new_blocks:
            self.mount_all(new_blocks)

    def _intro_text(self, ep: EpisodeView) -> Content:
        if ep.started_ts is None:
            return Content("Waiting to start (the run is busy with other episodes)…").stylize("$text-muted italic")
        text = Content.assemble(("task ", "$text-muted"), (ep.task_id, "bold"))
        if ep.parent_id:
            text += Content(f"  (forked from {ep.parent_id} after step {ep.fork_step})").stylize("$text-muted")
        return text

    def toggle_newest_output(self) -> bool:
        for number in sorted(self._blocks, reverse=True):
            if self._blocks[number].toggle_output():
                return True
        return False
