"""Control of a running episode: pause, step, resume, edit, cancel.

The TUI, the CLI and the tests all drive this one object. The episode calls `checkpoint()`
at every step boundary; that is where a pause takes effect and where an edit made while
paused is applied, so the next model call sees it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

from looper_engine.chat import Message

ControlState = Literal["running", "pausing", "paused", "cancelled", "finished"]


class ControlError(Exception):
    """A control used in a state where it means nothing (edit while running)."""


class Cancelled(Exception):
    """Raised inside the episode when the user cancels."""


class EpisodeControl:
    def __init__(self, start_paused: bool = False) -> None:
        self._pause_requested = start_paused
        self._pause_reason = "user"
        self._paused = False
        self._cancelled = False
        self._finished = False
        self._step_budget: int | None = None  # tool calls to run before pausing again
        self._wake = asyncio.Event()
        self._pending_edit: tuple[str | None, list[Message] | None] | None = None
        self._snapshot: Callable[[], tuple[str, list[Message]]] | None = None
        self.on_pause: Callable[[int, str], None] | None = None
        self.on_resume: Callable[[int, bool], None] | None = None
        self.step_index = 0

    # --- the user's side ------------------------------------------------------------

    @property
    def state(self) -> ControlState:
        if self._finished:
            return "finished"
        if self._cancelled:
            return "cancelled"
        if self._paused:
            return "paused"
        if self._pause_requested:
            return "pausing"
        return "running"

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def pause(self) -> None:
        """Pause at the next step boundary (the current model call and tool run finish)."""
        if not self._finished:
            self._pause_requested = True
            self._pause_reason = "user"
            self._step_budget = None

    def resume(self) -> None:
        self._pause_requested = False
        self._step_budget = None
        self._wake.set()

    def step(self) -> None:
        """Run exactly one more tool call, then pause again."""
        self._pause_requested = False
        self._step_budget = 1
        self._wake.set()

    def toggle(self) -> None:
        if self.state in ("paused", "pausing"):
            self.resume()
        else:
            self.pause()

    def cancel(self) -> None:
        self._cancelled = True
        self._wake.set()

    def snapshot(self) -> tuple[str, list[Message]]:
        """The system prompt and the whole pending history, as the next call would use them
        (before pruning). For the edit screen."""
        if self._snapshot is None:
            raise ControlError("the episode has not started yet")
        return self._snapshot()

    def edit(self, system_prompt: str | None = None, messages: list[Message] | None = None) -> None:
        """Replace the system prompt and/or the history (everything after the system prompt).
        Only while paused; applied before the next model call."""
        if not self._paused:
            raise ControlError("pause the episode before editing its prompt")
        self._pending_edit = (system_prompt, messages)

    # --- the episode's side ---------------------------------------------------------

    def attach(self, snapshot: Callable[[], tuple[str, list[Message]]]) -> None:
        self._snapshot = snapshot

    def take_edit(self) -> tuple[str | None, list[Message] | None] | None:
        edit, self._pending_edit = self._pending_edit, None
        return edit

    def tool_call_done(self) -> None:
        if self._step_budget is not None:
            self._step_budget -= 1
            if self._step_budget <= 0:
                self._step_budget = None
                self._pause_requested = True
                self._pause_reason = "step"

    async def checkpoint(self, step: int) -> None:
        """Wait here while paused. Raises Cancelled when the user cancels."""
        self.step_index = step
        if self._cancelled:
            raise Cancelled()
        if not self._pause_requested:
            return
        self._paused = True
        reason = self._pause_reason
        if self.on_pause:
            self.on_pause(step, reason)
        try:
            while self._pause_requested and not self._cancelled:
                self._wake.clear()
                await self._wake.wait()
        finally:
            self._paused = False
        if self._cancelled:
            raise Cancelled()
        if self.on_resume:
            self.on_resume(step, self._step_budget is not None)

    def finish(self) -> None:
        self._finished = True
        self._wake.set()
