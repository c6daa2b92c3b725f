"""What the streaming backends share: a stream over one async generator, the retry rule, and
per-event-loop client caches.

A leaf beside `base` and `spec`: it imports no backend and no client library, so the MLX
backend can use the stream without loading the Ollama client or httpx.

The retry rule: a failure before the first delta is retried with exponential backoff; once
text has reached the caller it is not, because restarting would hand the agent a second,
different reply glued onto the first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

from looper_engine.models.base import ModelStream, Usage

#: Statuses a busy or starting server answers; safe to retry while nothing has been streamed.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

C = TypeVar("C")


class GeneratorStream(ModelStream):
    """A ModelStream over one async generator. `aclose` ends generation and releases the request
    behind it; when the generator is mid-await in another task it stops at the next chunk."""

    def __init__(self, run: Callable[[GeneratorStream], AsyncIterator[str]]) -> None:
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        #: True when the server reported no usage and `usage` holds an estimate
        self.usage_estimated = False
        self.stopped = False
        self._gen = run(self)

    def _deltas(self) -> AsyncIterator[str]:
        return self._gen

    async def aclose(self) -> None:
        self.stopped = True
        with contextlib.suppress(RuntimeError):
            await self._gen.aclose()  # type: ignore[attr-defined]


class Backoff:
    """The retries one model call has left. `retry(sent)` waits `backoff_s * 2**attempt` and
    says True while nothing has been streamed (`sent` characters) and retries remain."""

    def __init__(self, retries: int, backoff_s: float) -> None:
        self.retries = retries
        self.backoff_s = backoff_s
        self.attempt = 0

    async def retry(self, sent: int) -> bool:
        if sent != 0 or self.attempt >= self.retries:
            return False
        await asyncio.sleep(self.backoff_s * 2**self.attempt)
        self.attempt += 1
        return True


class LoopClients(Generic[C]):
    """Clients keyed by timeout, made by `make(timeout_s)` on first use. httpx pools belong to
    the event loop that opened them; a script that runs several asyncio.run() calls gets fresh
    clients rather than dead connections."""

    def __init__(self, make: Callable[[float], C]) -> None:
        self._make = make
        self._clients: dict[float, C] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self, timeout_s: float) -> C:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._clients = {}
            self._loop = loop
        client = self._clients.get(timeout_s)
        if client is None:
            client = self._make(timeout_s)
            self._clients[timeout_s] = client
        return client

    def take_all(self) -> list[C]:
        """Every client made so far, forgotten here: the caller closes them."""
        clients, self._clients = list(self._clients.values()), {}
        return clients
