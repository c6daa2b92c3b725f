"""The backend contract.

A backend turns a list of chat messages into a stream of text deltas, then reports the
usage (prompt and completion tokens) of that call. Concurrent episodes share one backend
object; `for_task` lets a backend that needs per-episode state (the scripted policies)
hand out a bound copy.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from looper_engine.chat import Message

if TYPE_CHECKING:
    from looper_engine.tasks.model import Task


def estimate_tokens(messages: list[Message]) -> int:
    """About four characters a token, plus a few for each message's role markers. An estimate:
    real tokenizers vary by model and language."""
    return sum(len(m.content) // 4 + 4 for m in messages)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class GenOptions(BaseModel):
    temperature: float = 0.0
    max_tokens: int = 2048
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    num_ctx: int | None = None
    timeout_s: float = 300.0


class ModelStream(abc.ABC):
    """One model call: iterate for text deltas; `usage` is set once iteration ends."""

    usage: Usage | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        return self._deltas()

    @abc.abstractmethod
    def _deltas(self) -> AsyncIterator[str]: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Stop generation early (cancel, pause mid-stream). Default: nothing to release."""


class Backend(abc.ABC):
    spec: str = ""
    #: Shown wherever the model is named; scripted policies say so.
    label: str = ""
    #: True for scripted policies: a demo and test driver, never a result.
    scripted: bool = False

    @abc.abstractmethod
    def stream(self, messages: list[Message], options: GenOptions) -> ModelStream: ...

    def count_tokens(self, messages: list[Message]) -> int:
        """Tokens the messages take in this model's context. Default: ~4 characters a token."""
        return estimate_tokens(messages)

    def for_task(self, task: Task) -> Backend:
        """A backend for one episode of `task`. Stateless backends return themselves."""
        return self

    async def check(self) -> None:  # noqa: B027 - optional hook
        """Raise UserError with one clear line when the backend cannot serve (server down,
        model missing). Called once before a run starts."""

    async def aclose(self) -> None:  # noqa: B027
        """Release clients and threads."""

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "label": self.label, "scripted": self.scripted}
