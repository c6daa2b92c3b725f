"""Every episode this session has seen on the bus, folded by the engine's episode fold.

Each episode keeps its steps, streamed text, alarms and budget here, so the live view can
switch between the episodes of a run (or come back from another screen) and redraw any of
them at once without losing what streamed while it was hidden. Plain data, no widgets: the
screens read the immutable `EpisodeView`s in their message handlers.

Memory stays bounded however long an episode runs: step metadata is small and kept for
every step, while the streamed text and observations of old steps are dropped (the store
has them; the history view reads them from there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from looper_engine.episode_view import EpisodeFold, EpisodeView
from looper_engine.events import (
    EpisodeFinished,
    EpisodeStarted,
    EventBase,
    LoopAlarm,
    RunFinished,
    RunStarted,
)

#: Steps whose text (model output, tool output, observation) is kept in memory.
KEEP_TEXT_STEPS = 200
#: Characters of one step's streamed output kept (the end: where the tool call is).
MAX_OUTPUT_CHARS = 32_000


def loop_name(loop: str) -> str:
    return {
        "repeated_call": "repeated call",
        "repeated_read": "repeated read",
        "no_progress": "no progress",
    }.get(loop, loop.replace("_", " "))


@dataclass
class RunState:
    id: str
    started: RunStarted | None = None
    finished: RunFinished | None = None
    episode_ids: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.finished.status if self.finished else "running"


@dataclass
class Changes:
    """What one batch of events changed."""

    episodes: set[str] = field(default_factory=set)
    runs: set[str] = field(default_factory=set)
    alarms: list[LoopAlarm] = field(default_factory=list)
    finished: list[EpisodeFinished] = field(default_factory=list)
    runs_finished: list[RunFinished] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.episodes or self.runs)


class LabState:
    """Every run and episode this session has seen on the bus."""

    def __init__(self) -> None:
        self.episodes: dict[str, EpisodeView] = {}
        self.runs: dict[str, RunState] = {}
        self._folds: dict[str, EpisodeFold] = {}

    def _fold(self, episode_id: str) -> EpisodeFold:
        fold = self._folds.get(episode_id)
        if fold is None:
            fold = self._folds[episode_id] = EpisodeFold(
                episode_id, keep_text_steps=KEEP_TEXT_STEPS, max_output_chars=MAX_OUTPUT_CHARS
            )
            self.episodes[episode_id] = fold.view()
        return fold

    def episode(self, episode_id: str) -> EpisodeView:
        self._fold(episode_id)
        return self.episodes[episode_id]

    def expect(self, episode_id: str, run_id: str | None, task_id: str) -> EpisodeView:
        """Register an episode before its first event (it may wait for a free slot)."""
        fold = self._fold(episode_id)
        fold.expect(run_id, task_id)
        ep = self.episodes[episode_id] = fold.view()
        run = self.runs.get(run_id or "")
        if run is not None and episode_id not in run.episode_ids:
            run.episode_ids.append(episode_id)
        return ep

    def apply(self, batch: list[EventBase]) -> Changes:
        changes = Changes()
        for ev in batch:
            if isinstance(ev, RunStarted):
                run = self.runs.get(ev.run_id or "")
                if run is None:
                    run = self.runs[ev.run_id or ""] = RunState(id=ev.run_id or "")
                run.started = ev
                changes.runs.add(run.id)
                continue
            if isinstance(ev, RunFinished):
                run = self.runs.get(ev.run_id or "")
                if run is not None:
                    run.finished = ev
                changes.runs.add(ev.run_id or "")
                changes.runs_finished.append(ev)
                continue
            if ev.episode_id is None:
                continue
            fold = self._fold(ev.episode_id)
            if fold.apply(ev):
                changes.episodes.add(ev.episode_id)
            if isinstance(ev, EpisodeStarted) and ev.run_id:
                run = self.runs.get(ev.run_id)
                if run is not None and ev.episode_id not in run.episode_ids:
                    run.episode_ids.append(ev.episode_id)
                    changes.runs.add(run.id)
            elif isinstance(ev, LoopAlarm):
                changes.alarms.append(ev)
            elif isinstance(ev, EpisodeFinished):
                changes.finished.append(ev)
                run_id = self._folds[ev.episode_id].view().run_id
                if run_id:
                    changes.runs.add(run_id)
        for episode_id in changes.episodes:
            self.episodes[episode_id] = self._folds[episode_id].view()
        return changes
