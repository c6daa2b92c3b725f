"""Per-episode buffers fed by the one bus consumer.

Every episode seen in this session keeps its steps, streamed text, alarms and budget here,
so the live view can switch between the episodes of a run (or come back from another
screen) and redraw any of them at once without losing what streamed while it was hidden.
Plain data, no widgets: the screens read it in their message handlers.

Memory stays bounded however long an episode runs: step metadata is small and kept for
every step, while the streamed text and observations of old steps are dropped (the store
has them; the history view reads them from there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from looper_engine.events import (
    BudgetUpdate,
    CallOpened,
    CallParsed,
    ContextBuilt,
    EpisodeFinished,
    EpisodeStarted,
    EventBase,
    LoopAlarm,
    ModelDelta,
    ModelOutput,
    Observation,
    ParseProblem,
    Paused,
    PromptEdited,
    Resumed,
    RunFinished,
    RunStarted,
    ToolResult,
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


@dataclass(slots=True)
class StepState:
    step: int
    started_ts: float = 0.0
    context_tokens: int = 0
    budget: int = 0
    parts: list[str] = field(default_factory=list)
    chars: int = 0
    first_delta_ts: float | None = None
    last_delta_ts: float | None = None
    output_done: bool = False
    opened_tool: str | None = None
    tool: str | None = None
    target: str = ""
    call: dict[str, Any] | None = None
    problem: str | None = None
    result: ToolResult | None = None
    observation: str | None = None
    alarms: list[LoopAlarm] = field(default_factory=list)
    model_s: float = 0.0
    completion_tokens: int = 0
    prompt_tokens: int = 0
    text_dropped: bool = False

    @property
    def output(self) -> str:
        if len(self.parts) > 1:
            self.parts[:] = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""

    def add_text(self, text: str) -> None:
        self.parts.append(text)
        self.chars += len(text)
        if self.chars > MAX_OUTPUT_CHARS * 2:
            kept = self.output[-MAX_OUTPUT_CHARS:]
            self.parts[:] = [kept]
            self.chars = len(kept)

    @property
    def status(self) -> str:
        """One word for the timeline."""
        if self.problem is not None:
            return "malformed"
        if self.tool == "done":
            return "done"
        if self.result is not None:
            return "ok" if self.result.ok else "failed"
        if self.tool is not None:
            return "running"
        if self.output_done:
            return "parsing"
        return "thinking"

    @property
    def duration_s(self) -> float:
        return self.model_s + (self.result.duration_s if self.result else 0.0)

    def drop_text(self) -> None:
        if self.text_dropped:
            return
        self.parts = []
        self.chars = 0
        self.observation = None
        if self.result is not None:
            self.result = self.result.model_copy(update={"output": ""})
        self.text_dropped = True


@dataclass
class EpisodeState:
    id: str
    run_id: str | None = None
    task_id: str = "?"
    model: str = ""
    model_label: str = ""
    scripted: bool = False
    #: run with ``--sandbox none``: its commands were not confined
    unsandboxed: bool = False
    max_steps: int = 0
    token_budget: int = 0
    system_prompt: str = ""
    parent_id: str | None = None
    fork_step: int | None = None
    started_ts: float | None = None
    steps: list[StepState] = field(default_factory=list)
    alarms: list[LoopAlarm] = field(default_factory=list)
    context_tokens: int = 0
    budget: int = 0
    pruned_turns: int = 0
    paused_at: int | None = None
    pause_reason: str = "user"
    edits: int = 0
    finished: EpisodeFinished | None = None
    #: Bumped on every change; views compare it to what they drew.
    version: int = 0
    _first_step: int = 0

    # --- reading ------------------------------------------------------------------

    @property
    def status(self) -> str:
        if self.finished is not None:
            return self.finished.status
        if self.started_ts is None:
            return "waiting"
        if self.paused_at is not None:
            return "paused"
        return "running"

    @property
    def current_step(self) -> int:
        return self.steps[-1].step if self.steps else 0

    def step(self, number: int) -> StepState | None:
        i = number - self._first_step
        if 0 <= i < len(self.steps) and self.steps[i].step == number:
            return self.steps[i]
        for s in self.steps:
            if s.step == number:
                return s
        return None

    def tokens_per_second(self) -> float | None:
        """Completion tokens per second of model time over the finished calls; while the
        first call streams, an estimate from the text received so far (~4 characters a
        token)."""
        tokens = sum(s.completion_tokens for s in self.steps if s.output_done)
        seconds = sum(s.model_s for s in self.steps if s.output_done)
        if tokens and seconds > 0:
            return tokens / seconds
        if self.steps:
            s = self.steps[-1]
            if s.first_delta_ts is not None and s.last_delta_ts is not None:
                span = s.last_delta_ts - s.started_ts if s.started_ts else 0.0
                if span > 0:
                    return (s.chars / 4) / span
        return None

    def elapsed(self, now: float) -> float:
        if self.started_ts is None:
            return 0.0
        if self.finished is not None:
            return max(0.0, self.finished.ts - self.started_ts)
        return max(0.0, now - self.started_ts)

    # --- feeding ------------------------------------------------------------------

    def _step(self, number: int, ts: float) -> StepState:
        if self.steps and self.steps[-1].step == number:
            return self.steps[-1]
        found = self.step(number)
        if found is not None:
            return found
        s = StepState(step=number, started_ts=ts)
        if not self.steps:
            self._first_step = number
        self.steps.append(s)
        if len(self.steps) > KEEP_TEXT_STEPS:
            self.steps[-KEEP_TEXT_STEPS - 1].drop_text()
        return s

    def apply(self, ev: EventBase) -> bool:
        """Fold one event in. Returns True when something visible changed."""
        if isinstance(ev, ModelDelta):
            s = self._step(ev.step, ev.ts)
            if s.first_delta_ts is None:
                s.first_delta_ts = ev.ts
            s.last_delta_ts = ev.ts
            s.add_text(ev.text)
        elif isinstance(ev, ContextBuilt):
            s = self._step(ev.step, ev.ts)
            s.started_ts = ev.ts
            s.context_tokens, s.budget = ev.context_tokens, ev.budget
            self.context_tokens, self.budget = ev.context_tokens, ev.budget
        elif isinstance(ev, ModelOutput):
            s = self._step(ev.step, ev.ts)
            # The whole output is authoritative: a lossy subscription may have dropped deltas.
            s.parts = [ev.text[-MAX_OUTPUT_CHARS:]]
            s.chars = len(s.parts[0])
            s.output_done = True
            s.model_s = ev.duration_s
            s.completion_tokens, s.prompt_tokens = ev.completion_tokens, ev.prompt_tokens
        elif isinstance(ev, CallOpened):
            self._step(ev.step, ev.ts).opened_tool = ev.tool
        elif isinstance(ev, CallParsed):
            s = self._step(ev.step, ev.ts)
            s.tool, s.target, s.call = ev.tool, ev.target, ev.call
        elif isinstance(ev, ParseProblem):
            s = self._step(ev.step, ev.ts)
            s.problem, s.tool = ev.message, "(malformed)"
        elif isinstance(ev, ToolResult):
            self._step(ev.step, ev.ts).result = ev
        elif isinstance(ev, Observation):
            self._step(ev.step, ev.ts).observation = ev.text
        elif isinstance(ev, BudgetUpdate):
            self.context_tokens, self.budget = ev.context_tokens, ev.budget
            self.pruned_turns = ev.pruned_turns
        elif isinstance(ev, LoopAlarm):
            self._step(ev.step, ev.ts).alarms.append(ev)
            self.alarms.append(ev)
        elif isinstance(ev, Paused):
            self.paused_at, self.pause_reason = ev.step, ev.reason
        elif isinstance(ev, Resumed):
            self.paused_at = None
        elif isinstance(ev, PromptEdited):
            self.edits += 1
            self.system_prompt = ev.system_prompt
        elif isinstance(ev, EpisodeStarted):
            self.run_id = ev.run_id
            self.task_id, self.model, self.model_label = ev.task_id, ev.model, ev.model_label
            self.scripted = ev.scripted
            self.unsandboxed = ev.config.get("sandbox") == "none"
            self.max_steps, self.token_budget = ev.max_steps, ev.token_budget
            self.budget = self.budget or ev.token_budget
            self.system_prompt = ev.system_prompt
            self.parent_id, self.fork_step = ev.parent_episode_id, ev.fork_step
            self.started_ts = ev.ts
        elif isinstance(ev, EpisodeFinished):
            self.finished = ev
            self.paused_at = None
        else:
            return False
        self.version += 1
        return True


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
        self.episodes: dict[str, EpisodeState] = {}
        self.runs: dict[str, RunState] = {}

    def episode(self, episode_id: str) -> EpisodeState:
        ep = self.episodes.get(episode_id)
        if ep is None:
            ep = self.episodes[episode_id] = EpisodeState(id=episode_id)
        return ep

    def expect(self, episode_id: str, run_id: str | None, task_id: str) -> EpisodeState:
        """Register an episode before its first event (it may wait for a free slot)."""
        ep = self.episode(episode_id)
        ep.run_id = run_id
        if ep.started_ts is None:
            ep.task_id = task_id
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
            ep = self.episode(ev.episode_id)
            if ep.apply(ev):
                changes.episodes.add(ep.id)
            if isinstance(ev, EpisodeStarted) and ev.run_id:
                run = self.runs.get(ev.run_id)
                if run is not None and ep.id not in run.episode_ids:
                    run.episode_ids.append(ep.id)
                    changes.runs.add(run.id)
            elif isinstance(ev, LoopAlarm):
                changes.alarms.append(ev)
            elif isinstance(ev, EpisodeFinished):
                changes.finished.append(ev)
                if ep.run_id:
                    changes.runs.add(ep.run_id)
        return changes
