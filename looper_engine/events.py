"""Typed events for everything that happens, and the async fan-out bus.

Every event has a `kind` discriminator, the episode (and run) it belongs to, a sequence
number that is monotonic per episode (assigned by the bus), and a wall-clock timestamp.
A stored episode *is* its events: replay reads them back through the same code.

The bus never blocks the publisher. Each subscriber has its own queue; consecutive text
deltas of the same step are coalesced into one, so a slow reader sees fewer, larger deltas
instead of stalling the agent. A lossy subscriber (a UI) may also set a bound past which
deltas are dropped (the full text still arrives in the ModelOutput event).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, TypeAdapter


class EventBase(BaseModel):
    kind: str
    episode_id: str | None = None
    run_id: str | None = None
    seq: int = 0
    ts: float = Field(default_factory=time.time)


# --- runs ---------------------------------------------------------------------------


class RunStarted(EventBase):
    kind: Literal["run_started"] = "run_started"
    suite: str
    model: str
    model_label: str
    scripted: bool = False
    task_ids: list[str]
    concurrency: int = 1
    config: dict[str, Any] = Field(default_factory=dict)
    name: str = ""


class RunFinished(EventBase):
    kind: Literal["run_finished"] = "run_finished"
    status: Literal["finished", "cancelled", "errored"] = "finished"
    resolved: int = 0
    total: int = 0
    duration_s: float = 0.0


# --- episodes -----------------------------------------------------------------------


class EpisodeStarted(EventBase):
    kind: Literal["episode_started"] = "episode_started"
    task_id: str
    suite: str
    family: str = ""
    model: str
    model_label: str
    scripted: bool = False
    system_prompt: str
    task_prompt: str
    max_steps: int
    token_budget: int
    config: dict[str, Any] = Field(default_factory=dict)
    parent_episode_id: str | None = None
    fork_step: int | None = None


class ContextBuilt(EventBase):
    """The context sent to the model for `step`. History messages [2, dropped_upto) were
    replaced by one marker, observations before `elided_upto` had their text elided. With the
    recorded history this reproduces exactly what the model saw (agent/context.py)."""

    kind: Literal["context_built"] = "context_built"
    step: int
    n_messages: int
    dropped_upto: int = 2
    elided_upto: int = 2
    context_tokens: int
    budget: int


class ModelDelta(EventBase):
    kind: Literal["model_delta"] = "model_delta"
    step: int
    text: str


class ModelOutput(EventBase):
    kind: Literal["model_output"] = "model_output"
    step: int
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    duration_s: float = 0.0


class CallOpened(EventBase):
    kind: Literal["call_opened"] = "call_opened"
    step: int
    tool: str


class CallParsed(EventBase):
    kind: Literal["call_parsed"] = "call_parsed"
    step: int
    tool: str
    target: str = ""
    call: dict[str, Any]
    extra_calls: int = 0


class ParseProblem(EventBase):
    """Malformed model output. The message goes back to the model as an observation."""

    kind: Literal["parse_problem"] = "parse_problem"
    step: int
    message: str


class ToolResult(EventBase):
    kind: Literal["tool_result"] = "tool_result"
    step: int
    tool: str
    target: str = ""
    ok: bool
    exit_code: int | None = None
    output: str
    truncated: bool = False
    duration_s: float = 0.0


class Observation(EventBase):
    """The exact user message appended to the history after `step`."""

    kind: Literal["observation"] = "observation"
    step: int
    text: str


class BudgetUpdate(EventBase):
    kind: Literal["budget"] = "budget"
    step: int
    context_tokens: int
    budget: int
    pruned_turns: int = 0
    prompt_tokens_total: int = 0
    completion_tokens_total: int = 0


class LoopAlarm(EventBase):
    kind: Literal["loop_alarm"] = "loop_alarm"
    step: int
    loop: Literal["repeated_call", "repeated_read", "no_progress"]
    detail: str


class Paused(EventBase):
    kind: Literal["paused"] = "paused"
    step: int
    reason: Literal["user", "step"] = "user"


class Resumed(EventBase):
    kind: Literal["resumed"] = "resumed"
    step: int
    stepping: bool = False


class PromptEdited(EventBase):
    """The user replaced the system prompt and/or the pending messages while paused.
    `messages` is the full history after the edit (system prompt first)."""

    kind: Literal["prompt_edited"] = "prompt_edited"
    step: int
    system_prompt: str
    messages: list[dict[str, str]]


EpisodeStatus = Literal["resolved", "failed", "cancelled", "errored", "interrupted"]


class EpisodeFinished(EventBase):
    kind: Literal["episode_finished"] = "episode_finished"
    status: EpisodeStatus
    resolved: bool
    reason: str
    steps: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    duration_s: float = 0.0
    loop_alarms: int = 0
    tests_passed: int = 0
    tests_failed: int = 0
    test_output: str = ""
    error_signature: str = ""
    #: The workspace's diff against the task's source (the base commit of a SWE-bench task)
    #: before scoring; None where it could not be taken, or the episode predates it.
    patch: str | None = None


# --- training (consolidation) -------------------------------------------------------


class TrainProgress(EventBase):
    kind: Literal["train_progress"] = "train_progress"
    job_id: str
    iteration: int
    iterations: int
    train_loss: float | None = None
    val_loss: float | None = None
    tokens_per_second: float | None = None
    eta_s: float | None = None
    peak_memory_gb: float | None = None


class TrainFinished(EventBase):
    kind: Literal["train_finished"] = "train_finished"
    job_id: str
    status: Literal["finished", "cancelled", "errored"]
    adapter_id: str | None = None
    message: str = ""


Event = Annotated[
    Union[
        RunStarted,
        RunFinished,
        EpisodeStarted,
        ContextBuilt,
        ModelDelta,
        ModelOutput,
        CallOpened,
        CallParsed,
        ParseProblem,
        ToolResult,
        Observation,
        BudgetUpdate,
        LoopAlarm,
        Paused,
        Resumed,
        PromptEdited,
        EpisodeFinished,
        TrainProgress,
        TrainFinished,
    ],
    Field(discriminator="kind"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def event_from_json(data: str | bytes) -> EventBase:
    return EVENT_ADAPTER.validate_json(data)


def event_from_dict(data: dict[str, Any]) -> EventBase:
    return EVENT_ADAPTER.validate_python(data)


# --- the bus ------------------------------------------------------------------------


class Subscription:
    """One subscriber's queue. Iterate with `async for`; ends after `close()` or when the
    bus closes, once everything queued has been delivered."""

    def __init__(
        self,
        bus: EventBus,
        kinds: Iterable[str] | None,
        max_pending: int | None,
        predicate: Callable[[EventBase], bool] | None,
    ) -> None:
        self._bus = bus
        self._kinds = frozenset(kinds) if kinds is not None else None
        self._max_pending = max_pending
        self._predicate = predicate
        self._queue: deque[EventBase] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self.dropped_deltas = 0

    def wants(self, event: EventBase) -> bool:
        if self._kinds is not None and event.kind not in self._kinds:
            return False
        return self._predicate is None or self._predicate(event)

    def _put(self, event: EventBase) -> None:
        q = self._queue
        if isinstance(event, ModelDelta) and q:
            last = q[-1]
            if (
                isinstance(last, ModelDelta)
                and last.episode_id == event.episode_id
                and last.step == event.step
            ):
                # Coalesce: one bigger delta instead of many small ones.
                # model_construct: both parts are already validated events.
                q[-1] = ModelDelta.model_construct(
                    kind="model_delta",
                    episode_id=last.episode_id,
                    run_id=last.run_id,
                    seq=last.seq,
                    ts=last.ts,
                    step=last.step,
                    text=last.text + event.text,
                )
                return
        if (
            self._max_pending is not None
            and len(q) >= self._max_pending
            and isinstance(event, ModelDelta)
        ):
            self.dropped_deltas += 1
            return
        q.append(event)
        self._wakeup.set()

    def pending(self) -> int:
        return len(self._queue)

    def drain(self) -> list[EventBase]:
        """Everything queued now, without waiting."""
        items = list(self._queue)
        self._queue.clear()
        self._wakeup.clear()
        return items

    async def wait(self) -> bool:
        """Wait until an event is queued, without taking it; False once closed and empty."""
        while not self._queue:
            if self._closed:
                return False
            self._wakeup.clear()
            await self._wakeup.wait()
        return True

    async def get_batch(self) -> list[EventBase]:
        """Wait for at least one event; return all that are queued. Empty list = closed."""
        return self.drain() if await self.wait() else []

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()
        self._bus._remove(self)

    async def __aiter__(self) -> AsyncIterator[EventBase]:
        while True:
            batch = await self.get_batch()
            if not batch:
                return
            for event in batch:
                yield event


class EventBus:
    """Fan-out of events to subscribers. `publish` is synchronous and never waits."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._seq: dict[str | None, int] = {}

    def subscribe(
        self,
        kinds: Iterable[str] | None = None,
        *,
        max_pending: int | None = None,
        predicate: Callable[[EventBase], bool] | None = None,
    ) -> Subscription:
        sub = Subscription(self, kinds, max_pending, predicate)
        self._subs.append(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def next_seq(self, episode_id: str | None) -> int:
        seq = self._seq.get(episode_id, 0) + 1
        self._seq[episode_id] = seq
        return seq

    def set_seq(self, episode_id: str, seq: int) -> None:
        """Continue numbering after `seq` (a forked or resumed episode)."""
        self._seq[episode_id] = seq

    def publish(self, event: EventBase) -> EventBase:
        event.seq = self.next_seq(event.episode_id)
        for sub in self._subs:
            if sub.wants(event):
                sub._put(event)
        return event

    def close(self) -> None:
        for sub in list(self._subs):
            sub.close()
