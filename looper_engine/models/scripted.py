"""Scripted policies: a demo and test driver, never a result.

`scripted:oracle` solves a koan from its gold patch the way a model would (read, edit, run
the tests, done), streaming its output token by token at a set rate. Given a system prompt
that offers no shell (the compact profile), it uses only the tools offered, without prose:
read, edit, done. The fault policies
exercise the framework: `looper` repeats itself, `malformed` writes broken tool calls before
recovering, `never-done` keeps busy and never finishes, `wrong-fix` edits the wrong thing.
Everywhere a scripted backend appears it is labelled "scripted policy".
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from looper_engine.chat import Message
from looper_engine.errors import BadModelSpec
from looper_engine.models.base import Backend, GenOptions, ModelStream
from looper_engine.protocol.calls import BashCall, DoneCall, EditCall, ReadCall
from looper_engine.protocol.parser import render_call
from looper_engine.tasks.model import Task

if TYPE_CHECKING:
    from looper_engine.models.spec import ModelSpec

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
TEST_COMMAND = "python -m pytest -q"


def tokenize(text: str) -> list[str]:
    """Split text the way a BPE tokenizer roughly would: words, punctuation, whitespace."""
    return _TOKEN.findall(text)


Policy = Callable[[Task, int], str]


def _target(task: Task) -> str:
    if task.target_files:
        return task.target_files[0]
    if task.gold:
        return task.gold[0].path
    return "."


def oracle_turns(task: Task) -> list[str]:
    turns: list[str] = []
    reads = task.target_files or sorted({g.path for g in task.gold})
    for i, path in enumerate(reads):
        lead = "Let me read the code the report is about." if i == 0 else "And the other file involved."
        turns.append(f"{lead}\n{render_call(ReadCall(path=path))}")
    for i, edit in enumerate(task.gold):
        lead = "I see the bug. Fixing it:" if i == 0 else "One more place needs the same care:"
        turns.append(f"{lead}\n{render_call(EditCall(path=edit.path, old=edit.old, new=edit.new))}")
    turns.append(f"Now I run the tests once.\n{render_call(BashCall(command=TEST_COMMAND))}")
    turns.append(render_call(DoneCall(summary=f"fixed {task.id}")))
    return turns


def oracle(task: Task, turn: int) -> str:
    turns = oracle_turns(task)
    return turns[min(turn, len(turns) - 1)]


def compact_oracle_turns(task: Task) -> list[str]:
    reads = task.target_files or sorted({g.path for g in task.gold})
    turns = [render_call(ReadCall(path=path)) for path in reads]
    turns += [render_call(EditCall(path=e.path, old=e.old, new=e.new)) for e in task.gold]
    turns.append(render_call(DoneCall(summary="fixed")))
    return turns


def compact_oracle(task: Task, turn: int) -> str:
    turns = compact_oracle_turns(task)
    return turns[min(turn, len(turns) - 1)]


def looper(task: Task, turn: int) -> str:
    return f"Let me look at the file again.\n{render_call(ReadCall(path=_target(task)))}"


MALFORMED_TURNS = [
    # an unclosed edit
    'I will fix it.\n<edit path="{path}"><old>x = 1</old><new>x = 2</new>',
    # an unknown tag
    "<python>print('hello')</python>",
    # prose and no tag at all
    "I think the bug is somewhere in the loop, but I am not sure yet.",
]


def malformed(task: Task, turn: int) -> str:
    if turn < len(MALFORMED_TURNS):
        return MALFORMED_TURNS[turn].replace("{path}", _target(task))
    return oracle(task, turn - len(MALFORMED_TURNS))


def never_done(task: Task, turn: int) -> str:
    return f"Still investigating.\n{render_call(BashCall(command=f'echo checking {turn}'))}"


def wrong_fix(task: Task, turn: int) -> str:
    turns = [
        render_call(ReadCall(path=_target(task))),
        render_call(BashCall(command=TEST_COMMAND)),
        render_call(DoneCall(summary="looks fine to me")),
    ]
    return turns[min(turn, len(turns) - 1)]


POLICIES: dict[str, Policy] = {
    "oracle": oracle,
    "looper": looper,
    "malformed": malformed,
    "never-done": never_done,
    "wrong-fix": wrong_fix,
}
#: What a policy does when its system prompt offers no shell (the compact profile).
NO_SHELL_POLICIES: dict[str, Policy] = {"oracle": compact_oracle}


def _offers_shell(messages: list[Message]) -> bool:
    system = next((m.content for m in messages if m.role == "system"), None)
    return system is None or "<bash>" in system


class ScriptedStream(ModelStream):
    def __init__(self, text: str, rate: float) -> None:
        self._text = text
        self._rate = rate
        self._closed = False

    async def _deltas(self) -> AsyncIterator[str]:
        tokens = tokenize(self._text)
        start = time.monotonic()
        for i, tok in enumerate(tokens, 1):
            if self._closed:
                break
            yield tok
            if self._rate > 0:
                # Sleep to the schedule rather than per token, so the rate holds exactly.
                delay = start + i / self._rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif i % 64 == 0:
                    await asyncio.sleep(0)
            elif i % 256 == 0:
                await asyncio.sleep(0)
        # No server counts the prompt: the episode fills prompt tokens from its own count.
        self.usage = None

    async def aclose(self) -> None:
        self._closed = True


class ScriptedBackend(Backend):
    scripted = True

    def __init__(self, policy: str, rate: float = 0.0, task: Task | None = None) -> None:
        if policy not in POLICIES:
            raise BadModelSpec(
                f"unknown scripted policy {policy!r}; known: {', '.join(sorted(POLICIES))}"
            )
        self.policy = policy
        self.rate = rate
        self.task = task
        self.turn = 0
        self.spec = f"scripted:{policy}"
        self.label = f"scripted policy: {policy}"
        #: Every message list this backend was asked to continue (tests assert on it).
        self.received: list[list[Message]] = []

    @classmethod
    def from_spec(cls, parsed: ModelSpec, rate: float = 0.0, **_: Any) -> ScriptedBackend:
        return cls(parsed.name, rate=rate)

    def for_task(self, task: Task) -> ScriptedBackend:
        bound = ScriptedBackend(self.policy, self.rate, task)
        bound.received = self.received
        return bound

    def advance(self, turns: int) -> None:
        """Continue a forked episode: the policy resumes at `turns`."""
        self.turn = turns

    def stream(self, messages: list[Message], options: GenOptions) -> ScriptedStream:
        if self.task is None:
            raise RuntimeError("a scripted backend needs for_task() before stream()")
        self.received.append(list(messages))
        policy = POLICIES[self.policy]
        if self.policy in NO_SHELL_POLICIES and not _offers_shell(messages):
            policy = NO_SHELL_POLICIES[self.policy]
        text = policy(self.task, self.turn)
        self.turn += 1
        return ScriptedStream(text, self.rate)
