"""`ollama:MODEL` — a model served by Ollama, through the official `ollama` AsyncClient.

Host: the `host` kwarg, else OLLAMA_HOST, else http://127.0.0.1:11434.
Connection failures and busy answers before the first delta are retried (streaming.Backoff);
once text has reached the caller a failure is a BackendError.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from ollama import AsyncClient, ResponseError

from looper_engine.chat import Message, as_dicts
from looper_engine.errors import BackendError, UserError
from looper_engine.models.base import Backend, GenOptions, Usage, estimate_tokens
from looper_engine.models.streaming import RETRY_STATUSES, Backoff, GeneratorStream, LoopClients

if TYPE_CHECKING:
    from looper_engine.models.spec import ModelSpec

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434


def resolve_host(host: str | None = None) -> str:
    """The server URL a user means: kwarg, then OLLAMA_HOST, then the default. Accepts the
    forms OLLAMA_HOST takes (`host`, `host:port`, `:port`, with or without a scheme)."""
    raw = (host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST).strip().rstrip("/")
    if "://" not in raw:
        raw = f"http://{raw}"
    parts = urlsplit(raw)
    hostname = parts.hostname or "127.0.0.1"
    if ":" in hostname:  # IPv6 literal
        hostname = f"[{hostname}]"
    try:
        port = parts.port
    except ValueError as e:
        raise UserError(f"Ollama host {host or raw!r} has a bad port") from e
    if port is None:
        port = 443 if parts.scheme == "https" else DEFAULT_PORT
    return f"{parts.scheme}://{hostname}:{port}{parts.path}"


def _cannot_reach(host: str) -> str:
    return f"cannot reach Ollama at {host}; start it with `ollama serve`"


def _not_pulled(model: str, host: str) -> str:
    return f"model {model} is not available on {host}; run `ollama pull {model}`"


def _is_connect_failure(exc: BaseException) -> bool:
    # The client turns ConnectError into the builtin ConnectionError on plain requests but lets
    # it through on streams; both mean nobody answered.
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, ConnectionError))


class OllamaBackend(Backend):
    def __init__(
        self,
        model: str,
        *,
        host: str | None = None,
        retries: int = 3,
        backoff_s: float = 0.5,
        connect_timeout_s: float = 10.0,
        keep_alive: str | float | None = None,
    ) -> None:
        if not model.strip():
            raise UserError("ollama: needs a model name, e.g. ollama:qwen2.5-coder:7b")
        self.model = model
        self.host = resolve_host(host)
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self.connect_timeout_s = connect_timeout_s
        self.keep_alive = keep_alive
        self.spec = f"ollama:{model}"
        self.label = f"ollama:{model}"
        self._clients = LoopClients(self._new_client)
        # server prompt tokens / our estimate, learnt from the last reply that reported them
        self._calibration: float | None = None

    @classmethod
    def from_spec(
        cls,
        spec: ModelSpec,
        *,
        host: str | None = None,
        retries: int = 3,
        backoff_s: float = 0.5,
        connect_timeout_s: float = 10.0,
        keep_alive: str | float | None = None,
        **_other_backends: Any,
    ) -> OllamaBackend:
        """Kwargs meant for other backends (adapters_dir, lora ...) are ignored so that callers
        can pass one set for any spec."""
        return cls(
            spec.name,
            host=host,
            retries=retries,
            backoff_s=backoff_s,
            connect_timeout_s=connect_timeout_s,
            keep_alive=keep_alive,
        )

    def _new_client(self, timeout_s: float) -> AsyncClient:
        timeout = httpx.Timeout(timeout_s, connect=min(self.connect_timeout_s, timeout_s))
        return AsyncClient(host=self.host, timeout=timeout)

    def _client(self, timeout_s: float) -> AsyncClient:
        return self._clients.get(timeout_s)

    def _options(self, options: GenOptions) -> dict[str, Any]:
        opts: dict[str, Any] = {"temperature": options.temperature, "num_predict": options.max_tokens}
        if options.seed is not None:
            opts["seed"] = options.seed
        if options.stop:
            opts["stop"] = list(options.stop)
        if options.num_ctx is not None:
            opts["num_ctx"] = options.num_ctx
        return opts

    def stream(self, messages: list[Message], options: GenOptions) -> GeneratorStream:
        return GeneratorStream(lambda s: self._run(s, messages, options))

    async def _run(self, stream: GeneratorStream, messages: list[Message], options: GenOptions) -> AsyncIterator[str]:
        client = self._client(options.timeout_s)
        payload = as_dicts(messages)
        opts = self._options(options)
        sent = 0  # characters handed to the caller
        backoff = Backoff(self.retries, self.backoff_s)
        while True:
            final = None
            try:
                parts = await client.chat(
                    model=self.model, messages=payload, stream=True, options=opts, keep_alive=self.keep_alive
                )
                async with contextlib.aclosing(parts):
                    async for part in parts:
                        text = part.message.content if part.message is not None else None
                        if text:
                            sent += len(text)
                            yield text
                        if part.done:
                            # Read on to the end of the body (nothing follows) so the
                            # connection goes back to the pool instead of being dropped.
                            final = part
                        if stream.stopped:
                            return
            except ResponseError as e:
                if e.status_code == 404:
                    raise BackendError(_not_pulled(self.model, self.host)) from None
                if e.status_code in RETRY_STATUSES and await backoff.retry(sent):
                    continue
                if e.status_code == -1:
                    raise BackendError(f"Ollama at {self.host} reported an error mid-reply: {e.error}") from None
                raise BackendError(f"Ollama at {self.host} answered {e.status_code}: {e.error}") from None
            except httpx.ReadTimeout:
                raise BackendError(
                    f"Ollama at {self.host} sent nothing for {options.timeout_s:g} s (timeout_s); "
                    "the model may be loading or stuck"
                ) from None
            except (httpx.TransportError, ConnectionError) as e:
                if await backoff.retry(sent):
                    continue
                if sent == 0 and _is_connect_failure(e):
                    raise BackendError(_cannot_reach(self.host)) from None
                if sent == 0:
                    raise BackendError(
                        f"Ollama at {self.host} dropped the connection before replying ({type(e).__name__}: {e})"
                    ) from None
                raise BackendError(
                    f"Ollama at {self.host} cut the stream after {sent} characters of the reply "
                    f"({type(e).__name__}: {e})"
                ) from None
            except json.JSONDecodeError as e:
                raise BackendError(f"Ollama at {self.host} sent a line that is not JSON: {e}") from None
            if stream.stopped:
                return
            if final is None:
                raise BackendError(
                    f"Ollama at {self.host} ended the stream after {sent} characters without a final chunk"
                )
            estimate = estimate_tokens(messages)
            prompt_tokens = final.prompt_eval_count
            # Ollama omits or shrinks prompt_eval_count when the prompt came from its cache, so
            # only a count near the estimate refines it.
            if prompt_tokens and estimate and 0.25 <= prompt_tokens / estimate <= 4.0:
                self._calibration = prompt_tokens / estimate
            stream.usage = Usage(
                prompt_tokens=prompt_tokens if prompt_tokens is not None else self.count_tokens(messages),
                completion_tokens=final.eval_count if final.eval_count is not None else sent // 4,
            )
            stream.usage_estimated = prompt_tokens is None or final.eval_count is None
            stream.finish_reason = final.done_reason
            return

    def count_tokens(self, messages: list[Message]) -> int:
        """A chars/4 estimate, scaled by what the server reported for the last prompt when it
        reported one (Ollama has no tokenize endpoint)."""
        estimate = estimate_tokens(messages)
        if self._calibration is None:
            return estimate
        return round(estimate * self._calibration)

    async def check(self) -> None:
        client = self._client(min(30.0, self.connect_timeout_s * 3))
        try:
            await client.show(self.model)
        except ResponseError as e:
            if e.status_code == 404:
                raise UserError(_not_pulled(self.model, self.host)) from None
            raise UserError(f"Ollama at {self.host} answered {e.status_code}: {e.error}") from None
        except (httpx.TransportError, ConnectionError):
            raise UserError(_cannot_reach(self.host)) from None

    async def aclose(self) -> None:
        for client in self._clients.take_all():
            with contextlib.suppress(Exception):
                await client.close()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "host": self.host, "model": self.model}


async def list_models(host: str | None = None) -> list[dict[str, Any]]:
    """The models an Ollama server has pulled: name, size (bytes), modified (datetime or None),
    family, parameter_size, quantization. UserError with one line when the server is down."""
    url = resolve_host(host)
    client = AsyncClient(host=url, timeout=httpx.Timeout(30.0, connect=10.0))
    try:
        listing = await client.list()
    except ResponseError as e:
        raise UserError(f"Ollama at {url} answered {e.status_code}: {e.error}") from None
    except (httpx.TransportError, ConnectionError):
        raise UserError(_cannot_reach(url)) from None
    finally:
        await client.close()
    rows: list[dict[str, Any]] = []
    for m in listing.models:
        details = m.details
        rows.append(
            {
                "name": m.model,
                "size": int(m.size) if m.size is not None else None,
                "modified": m.modified_at,
                "family": details.family if details else None,
                "parameter_size": details.parameter_size if details else None,
                "quantization": details.quantization_level if details else None,
            }
        )
    rows.sort(key=lambda r: r["name"] or "")
    return rows
