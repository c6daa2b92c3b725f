"""A stored episode is its events; this turns them back into steps.

For every step: the exact context the model saw (history + the recorded pruning cut
points, rendered by the same function the agent used), its raw output, the parsed call or
the parse problem, the tool result, the observation and any loop alarms. Contexts are
rendered lazily, so opening a 10,000-step episode costs O(steps), not O(steps^2).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from looper_engine.agent.context import render_context
from looper_engine.chat import Message
from looper_engine.events import (
    BudgetUpdate,
    CallParsed,
    ContextBuilt,
    EpisodeFinished,
    EpisodeStarted,
    EventBase,
    LoopAlarm,
    ModelOutput,
    Observation,
    ParseProblem,
    PromptEdited,
    ToolResult,
)


class StepRecord(BaseModel):
    step: int
    history_version: int = 0
    n_messages: int = 0
    dropped_upto: int = 2
    elided_upto: int = 2
    context_tokens: int = 0
    budget: int = 0
    output: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_s: float = 0.0
    call: dict[str, Any] | None = None
    tool: str | None = None
    target: str = ""
    problem: str | None = None
    result: ToolResult | None = None
    observation: str | None = None
    alarms: list[LoopAlarm] = Field(default_factory=list)
    pruned_turns: int = 0


class Trajectory(BaseModel):
    started: EpisodeStarted
    finished: EpisodeFinished | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    histories: list[list[Message]] = Field(default_factory=list)
    edits: list[PromptEdited] = Field(default_factory=list)

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
        return [
            s.call
            for s in self.steps[:upto]
            if s.call is not None and s.result is not None
        ]


def trajectory_from_events(events: list[EventBase]) -> Trajectory:
    started = next((e for e in events if isinstance(e, EpisodeStarted)), None)
    if started is None:
        raise ValueError("no episode_started event")
    traj = Trajectory(started=started)
    history = [
        Message(role="system", content=started.system_prompt),
        Message(role="user", content=started.task_prompt),
    ]
    traj.histories.append(history)
    by_step: dict[int, StepRecord] = {}

    def rec(step: int) -> StepRecord:
        r = by_step.get(step)
        if r is None:
            r = StepRecord(step=step)
            by_step[step] = r
            traj.steps.append(r)
        return r

    for ev in events:
        if isinstance(ev, PromptEdited):
            history = [Message(**m) for m in ev.messages]
            traj.histories.append(history)
            traj.edits.append(ev)
        elif isinstance(ev, ContextBuilt):
            r = rec(ev.step)
            r.history_version = len(traj.histories) - 1
            r.n_messages = ev.n_messages
            r.dropped_upto, r.elided_upto = ev.dropped_upto, ev.elided_upto
            r.context_tokens, r.budget = ev.context_tokens, ev.budget
        elif isinstance(ev, ModelOutput):
            r = rec(ev.step)
            r.output = ev.text
            r.prompt_tokens, r.completion_tokens, r.model_s = (
                ev.prompt_tokens,
                ev.completion_tokens,
                ev.duration_s,
            )
            history.append(Message(role="assistant", content=ev.text))
        elif isinstance(ev, CallParsed):
            r = rec(ev.step)
            r.call, r.tool, r.target = ev.call, ev.tool, ev.target
        elif isinstance(ev, ParseProblem):
            r = rec(ev.step)
            r.problem, r.tool = ev.message, "(malformed)"
        elif isinstance(ev, ToolResult):
            rec(ev.step).result = ev
        elif isinstance(ev, Observation):
            rec(ev.step).observation = ev.text
            history.append(Message(role="user", content=ev.text))
        elif isinstance(ev, LoopAlarm):
            rec(ev.step).alarms.append(ev)
        elif isinstance(ev, BudgetUpdate):
            rec(ev.step).pruned_turns = ev.pruned_turns
        elif isinstance(ev, EpisodeFinished):
            traj.finished = ev
    return traj
