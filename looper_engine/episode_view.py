"""What an episode looks like after a stream of its events: one fold, used by everything that
shows or replays an episode (the store's replay, the TUI, the headless run's live view).

`EpisodeFold` takes events one at a time and hands out immutable `EpisodeView`s; it does no
I/O and reads no clock, so the same events always give the same view. A live view folds with
`keep_text_steps` and `max_output_chars` set, which keeps memory bounded however long an
episode runs: every step keeps its metadata, while the text of old steps is dropped (the store
has it). Replay folds with no limits and sees everything.

Folding is O(1) per event; `view()` refreezes only the steps that changed since the last view.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
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
    ToolResult,
)

#: Characters per token when a rate must be guessed from streamed text alone.
CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class StepView:
    """One step as its events describe it so far."""

    step: int
    started_ts: float = 0.0
    #: Which history the context was cut from: 0 the original, n after the n-th prompt edit.
    history_version: int = 0
    n_messages: int = 0
    dropped_upto: int = 2
    elided_upto: int = 2
    context_tokens: int = 0
    budget: int = 0
    output: str = ""
    output_done: bool = False
    first_delta_ts: float | None = None
    last_delta_ts: float | None = None
    opened_tool: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_s: float = 0.0
    call: dict[str, Any] | None = None
    tool: str | None = None
    target: str = ""
    problem: str | None = None
    result: ToolResult | None = None
    observation: str | None = None
    alarms: tuple[LoopAlarm, ...] = ()
    pruned_turns: int = 0
    #: The step's text was let go to bound memory (a live fold only).
    text_dropped: bool = False

    @property
    def chars(self) -> int:
        return len(self.output)

    @property
    def status(self) -> str:
        """One word for a timeline."""
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

    @property
    def last_call(self) -> str:
        """The call in a few words, with the exit code once it ran ("" before any call)."""
        if self.problem is not None:
            return "malformed output"
        if self.tool is None:
            return ""
        text = f"{self.tool} {self.target}"[:50]
        if self.result is not None and self.result.exit_code is not None:
            text += f" -> {self.result.exit_code}"
        return text


_STEP_DEFAULTS: dict[str, Any] = {
    name: getattr(StepView(step=0), name) for name in StepView.__dataclass_fields__ if name != "step"
}


@dataclass(frozen=True, slots=True)
class EpisodeView:
    """An episode as its events describe it so far."""

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
    started: EpisodeStarted | None = None
    started_ts: float | None = None
    steps: tuple[StepView, ...] = ()
    alarms: tuple[LoopAlarm, ...] = ()
    context_tokens: int = 0
    budget: int = 0
    pruned_turns: int = 0
    paused_at: int | None = None
    pause_reason: str = "user"
    edits: tuple[PromptEdited, ...] = ()
    finished: EpisodeFinished | None = None
    #: Events folded in that changed something; a view compares it to what it drew.
    version: int = 0

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

    def step(self, number: int) -> StepView | None:
        if self.steps:
            # Steps are contiguous from the first recorded one (a fork starts later).
            i = number - self.steps[0].step
            if 0 <= i < len(self.steps) and self.steps[i].step == number:
                return self.steps[i]
        return next((s for s in self.steps if s.step == number), None)

    def tokens_per_second(self) -> float | None:
        """Completion tokens per second of model time over the finished calls; while the
        first call streams, an estimate from the text received so far."""
        tokens = sum(s.completion_tokens for s in self.steps if s.output_done)
        seconds = sum(s.model_s for s in self.steps if s.output_done)
        if tokens and seconds > 0:
            return tokens / seconds
        if self.steps:
            s = self.steps[-1]
            if s.first_delta_ts is not None and s.last_delta_ts is not None:
                span = s.last_delta_ts - s.started_ts if s.started_ts else 0.0
                if span > 0:
                    return (s.chars / CHARS_PER_TOKEN) / span
        return None

    def elapsed(self, now: float) -> float:
        if self.started_ts is None:
            return 0.0
        if self.finished is not None:
            return max(0.0, self.finished.ts - self.started_ts)
        return max(0.0, now - self.started_ts)


def _tail(text: str, chars: int) -> str:
    return text[max(0, len(text) - chars) :]


class _StepDraft:
    """A step while events still change it: plain fields, and streamed text in parts."""

    __slots__ = ("fields", "parts", "chars")

    def __init__(self, step: int, ts: float) -> None:
        self.fields: dict[str, Any] = {**_STEP_DEFAULTS, "step": step, "started_ts": ts, "alarms": []}
        self.parts: list[str] = []
        self.chars = 0

    def output(self) -> str:
        if len(self.parts) > 1:
            self.parts[:] = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""

    def set_output(self, text: str) -> None:
        self.parts[:] = [text] if text else []
        self.chars = len(text)

    def freeze(self) -> StepView:
        f = self.fields
        return StepView(**{**f, "output": self.output(), "alarms": tuple(f["alarms"])})


class EpisodeFold:
    """Folds one episode's events into `EpisodeView`s. `apply` says whether the event changed
    anything; `view` is the episode as of the last event applied."""

    def __init__(
        self,
        episode_id: str = "",
        *,
        run_id: str | None = None,
        task_id: str = "?",
        keep_text_steps: int | None = None,
        max_output_chars: int | None = None,
    ) -> None:
        self._keep_text_steps = keep_text_steps
        self._max_output_chars = max_output_chars
        self._episode: dict[str, Any] = {"id": episode_id, "run_id": run_id, "task_id": task_id}
        self._drafts: list[_StepDraft] = []
        self._frozen: list[StepView] = []
        self._index: dict[int, int] = {}
        self._dirty: set[int] = set()
        self._alarms: list[LoopAlarm] = []
        self._edits: list[PromptEdited] = []
        self._version = 0
        self._view: EpisodeView | None = None

    @property
    def version(self) -> int:
        return self._version

    def expect(self, run_id: str | None, task_id: str) -> None:
        """What is known of an episode before its first event (it may wait for a free slot)."""
        self._episode["run_id"] = run_id
        if self._episode.get("started_ts") is None:
            self._episode["task_id"] = task_id
        self._view = None

    # --- folding ------------------------------------------------------------------

    def _step(self, number: int, ts: float) -> _StepDraft:
        i = self._index.get(number)
        if i is None:
            i = self._index[number] = len(self._drafts)
            draft = _StepDraft(number, ts)
            self._drafts.append(draft)
            self._frozen.append(StepView(step=number))
            keep = self._keep_text_steps
            if keep is not None and len(self._drafts) > keep:
                self._drop_text(len(self._drafts) - keep - 1)
        self._dirty.add(i)
        return self._drafts[i]

    def _drop_text(self, i: int) -> None:
        draft = self._drafts[i]
        f = draft.fields
        if f["text_dropped"]:
            return
        draft.set_output("")
        f["observation"] = None
        if f["result"] is not None:
            f["result"] = f["result"].model_copy(update={"output": ""})
        f["text_dropped"] = True
        self._dirty.add(i)

    def _add_text(self, draft: _StepDraft, text: str) -> None:
        draft.parts.append(text)
        draft.chars += len(text)
        cap = self._max_output_chars
        if cap is not None and draft.chars > cap * 2:
            draft.set_output(_tail(draft.output(), cap))

    def apply(self, ev: EventBase) -> bool:
        """Fold one event in. True when it changed the view."""
        episode = self._episode
        if isinstance(ev, ModelDelta):
            d = self._step(ev.step, ev.ts)
            if d.fields["first_delta_ts"] is None:
                d.fields["first_delta_ts"] = ev.ts
            d.fields["last_delta_ts"] = ev.ts
            self._add_text(d, ev.text)
        elif isinstance(ev, ContextBuilt):
            d = self._step(ev.step, ev.ts)
            d.fields.update(
                started_ts=ev.ts,
                history_version=len(self._edits),
                n_messages=ev.n_messages,
                dropped_upto=ev.dropped_upto,
                elided_upto=ev.elided_upto,
                context_tokens=ev.context_tokens,
                budget=ev.budget,
            )
            episode.update(context_tokens=ev.context_tokens, budget=ev.budget)
        elif isinstance(ev, ModelOutput):
            d = self._step(ev.step, ev.ts)
            # The whole output is authoritative: a lossy subscription may have dropped deltas.
            cap = self._max_output_chars
            d.set_output(ev.text if cap is None else _tail(ev.text, cap))
            d.fields.update(
                output_done=True,
                model_s=ev.duration_s,
                completion_tokens=ev.completion_tokens,
                prompt_tokens=ev.prompt_tokens,
            )
        elif isinstance(ev, CallOpened):
            self._step(ev.step, ev.ts).fields["opened_tool"] = ev.tool
        elif isinstance(ev, CallParsed):
            self._step(ev.step, ev.ts).fields.update(tool=ev.tool, target=ev.target, call=ev.call)
        elif isinstance(ev, ParseProblem):
            self._step(ev.step, ev.ts).fields.update(problem=ev.message, tool="(malformed)")
        elif isinstance(ev, ToolResult):
            self._step(ev.step, ev.ts).fields["result"] = ev
        elif isinstance(ev, Observation):
            self._step(ev.step, ev.ts).fields["observation"] = ev.text
        elif isinstance(ev, BudgetUpdate):
            self._step(ev.step, ev.ts).fields["pruned_turns"] = ev.pruned_turns
            episode.update(context_tokens=ev.context_tokens, budget=ev.budget, pruned_turns=ev.pruned_turns)
        elif isinstance(ev, LoopAlarm):
            self._step(ev.step, ev.ts).fields["alarms"].append(ev)
            self._alarms.append(ev)
        elif isinstance(ev, Paused):
            episode.update(paused_at=ev.step, pause_reason=ev.reason)
        elif isinstance(ev, Resumed):
            episode["paused_at"] = None
        elif isinstance(ev, PromptEdited):
            self._edits.append(ev)
            episode["system_prompt"] = ev.system_prompt
        elif isinstance(ev, EpisodeStarted):
            episode.update(
                run_id=ev.run_id,
                task_id=ev.task_id,
                model=ev.model,
                model_label=ev.model_label,
                scripted=ev.scripted,
                unsandboxed=ev.config.get("sandbox") == "none",
                max_steps=ev.max_steps,
                token_budget=ev.token_budget,
                budget=episode.get("budget") or ev.token_budget,
                system_prompt=ev.system_prompt,
                parent_id=ev.parent_episode_id,
                fork_step=ev.fork_step,
                started=ev,
                started_ts=ev.ts,
            )
        elif isinstance(ev, EpisodeFinished):
            episode.update(finished=ev, paused_at=None)
        else:
            return False
        self._version += 1
        self._view = None
        return True

    def apply_all(self, events: Iterable[EventBase]) -> EpisodeFold:
        for ev in events:
            self.apply(ev)
        return self

    # --- reading ------------------------------------------------------------------

    def view(self) -> EpisodeView:
        if self._view is None:
            for i in self._dirty:
                self._frozen[i] = self._drafts[i].freeze()
            self._dirty.clear()
            self._view = EpisodeView(
                **self._episode,
                steps=tuple(self._frozen),
                alarms=tuple(self._alarms),
                edits=tuple(self._edits),
                version=self._version,
            )
        return self._view


def fold_episode(events: Iterable[EventBase], episode_id: str = "") -> EpisodeView:
    """The view of an episode after all of `events`, nothing dropped."""
    return EpisodeFold(episode_id).apply_all(events).view()
