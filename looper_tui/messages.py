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


# --- what screens ask of the app ------------------------------------------------------------


class OpenEpisode(Message):
    """Open an episode: live while this session runs it, else its recorded history."""

    def __init__(self, episode_id: str) -> None:
        super().__init__()
        self.episode_id = episode_id


class ShowLive(Message):
    """Watch these episodes live (`current` first)."""

    def __init__(self, episode_ids: list[str], *, current: str | None = None, title: str = "") -> None:
        super().__init__()
        self.episode_ids = episode_ids
        self.current = current
        self.title = title


class ShowHistory(Message):
    """Replay a stored episode step by step (from `step`, when given)."""

    def __init__(self, episode_id: str, step: int | None = None) -> None:
        super().__init__()
        self.episode_id = episode_id
        self.step = step


class ShowResults(Message):
    """An experiment's results (its matrix, transfer and forgetting, flips, gate verdicts)."""

    def __init__(self, experiment: str) -> None:
        super().__init__()
        self.experiment = experiment


class StartDemo(Message):
    """The built-in demo run."""


class OpenMiniLab(Message):
    """The mini-lab: watch a model learn (or one line saying how to get its model)."""


class NewRun(Message):
    """The new-run form, with `model` filled in when given."""

    def __init__(self, model: str | None = None) -> None:
        super().__init__()
        self.model = model


class StartFork(Message):
    """Resume a stored episode after `step` as a new, linked episode."""

    def __init__(self, episode_id: str, step: int, *, system_prompt: str | None, model: str | None,
                 rate: float) -> None:
        super().__init__()
        self.episode_id = episode_id
        self.step = step
        self.system_prompt = system_prompt
        self.model = model
        self.rate = rate


class AdapterTrained(Message):
    """A training job registered an adapter (its screen may be closed by then): the lab
    home lists it."""

    def __init__(self, adapter_id: str) -> None:
        super().__init__()
        self.adapter_id = adapter_id
