"""A stored episode is its events; this turns them back into steps.

The steps come from the one episode fold (`episode_view`); on top of it replay keeps the
histories, so for every step the exact context the model saw (history + the recorded pruning
cut points, rendered by the same function the agent used) can be rebuilt, with its raw output,
the parsed call or the parse problem, the tool result, the observation and any loop alarms.
Contexts are rendered lazily, so opening a 10,000-step episode costs O(steps), not O(steps^2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from looper_engine.chat import Message
from looper_engine.context_view import render_context
from looper_engine.episode_view import EpisodeFold, StepView
from looper_engine.events import (
    EpisodeFinished,
    EpisodeStarted,
    EventBase,
    ModelOutput,
    Observation,
    PromptEdited,
)

#: One recorded step, as the fold sees it.
StepRecord = StepView


@dataclass(frozen=True, slots=True)
class Trajectory:
    started: EpisodeStarted
    finished: EpisodeFinished | None
    steps: tuple[StepView, ...]
    #: The history as recorded: the original, then one per prompt edit (StepView.history_version).
    histories: tuple[list[Message], ...]
    edits: tuple[PromptEdited, ...]

    def context(self, step: int) -> list[Message]:
        """Exactly what the model was sent at `step` (1-based)."""
        rec = self.steps[step - 1]
        history = self.histories[rec.history_version][: rec.n_messages]
        return render_context(history, rec.dropped_upto, rec.elided_upto)

    def history_after(self, step: int) -> list[Message]:
        """The full history once `step` was done (its observation included)."""
        if step <= 0:
            return list(self.histories[0][:2])
        rec = self.steps[step - 1]
        history = self.histories[rec.history_version]
        n = rec.n_messages + 1 + (1 if rec.observation is not None else 0)
        return list(history[:n])

    def executed_calls(self, upto: int) -> list[dict[str, Any]]:
        return [s.call for s in self.steps[:upto] if s.call is not None and s.result is not None]


def trajectory_from_events(events: list[EventBase]) -> Trajectory:
    started = next((e for e in events if isinstance(e, EpisodeStarted)), None)
    if started is None:
        raise ValueError("no episode_started event")
    fold = EpisodeFold(started.episode_id or "")
    history = [
        Message(role="system", content=started.system_prompt),
        Message(role="user", content=started.task_prompt),
    ]
    histories = [history]
    for ev in events:
        fold.apply(ev)
        if isinstance(ev, PromptEdited):
            history = [Message(**m) for m in ev.messages]
            histories.append(history)
        elif isinstance(ev, ModelOutput):
            history.append(Message(role="assistant", content=ev.text))
        elif isinstance(ev, Observation):
            history.append(Message(role="user", content=ev.text))
    view = fold.view()
    return Trajectory(
        started=started,
        finished=view.finished,
        steps=view.steps,
        histories=tuple(histories),
        edits=view.edits,
    )
