"""The typed messages between the bus consumer, the app and its screens."""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from textual.message import Message

from looper_engine.events import EventBase
from looper_tui.state import Changes


class BusBatch(Message):
    """Everything the bus delivered since the last batch (text deltas already coalesced).
    `handled` is set once the app has folded it in and the screens have drawn it: the
    consumer waits for that before taking the next batch, so a fast model can never queue
    up more work than the UI gets through (the subscription coalesces in the meantime)."""

    def __init__(self, events: list[EventBase]) -> None:
        super().__init__()
        self.events = events
        self.handled = asyncio.Event()


class LabChanged(Message):
    """The lab state changed; screens that show it redraw what `changes` names."""

    def __init__(self, changes: Changes) -> None:
        super().__init__()
        self.changes = changes


@runtime_checkable
class LabView(Protocol):
    """A screen that shows the lab state; the app calls it with each batch's changes."""

    def lab_changed(self, message: LabChanged) -> None: ...
