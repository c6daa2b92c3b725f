"""`openai:MODEL@URL` — any OpenAI-compatible chat server (vLLM, llama.cpp, LM Studio, SGLang).

Talks to `URL/chat/completions` with httpx directly: `stream: true` and
`stream_options: {"include_usage": true}`, Server-Sent Events parsed line by line, usage from
the stream's usage chunk (estimated, and marked so, when a server sends none).

LoRA adapters: vLLM (started with `--enable-lora --lora-modules NAME=PATH`) serves each adapter
as a model of its own name. Pass `lora="NAME"` and every request asks for that model, so one
base-model server can answer for base and adapter arms side by side. The spec names it after
a `#` (`looper adapters serve-config` prints both the server's flags and the specs):

    create_backend("openai:Qwen/Qwen2.5-Coder-7B@http://gpu:8000/v1#koans-c3")
    create_backend("openai:Qwen/Qwen2.5-Coder-7B@http://gpu:8000/v1", lora="koans-c3")  # the same

The API key comes from the `api_key` kwarg, else OPENAI_API_KEY; none is sent when neither is set.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

from looper_engine.chat import Message, as_dicts
from looper_engine.errors import BackendError, UserError
from looper_engine.models.base import Backend, GenOptions, Usage, estimate_tokens
from looper_engine.models.streaming import RETRY_STATUSES, Backoff, GeneratorStream, LoopClients

if TYPE_CHECKING:
    from looper_engine.models.spec import ModelSpec


def _error_message(response: httpx.Response) -> str:
    """The human part of an error body, whichever server shape it has."""
    text = response.text.strip()
    try:
        body = json.loads(text)
    except ValueError:
        return text[:200] or response.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        for key in ("message", "detail"):
            if body.get(key):
                return str(body[key])
    return text[:200]


class _Status(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class OpenAIBackend(Backend):
    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        lora: str | None = None,
        api_key: str | None = None,
        retries: int = 3,
        backoff_s: float = 0.5,
        connect_timeout_s: float = 10.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise UserError(f"server URL {base_url!r} must start with http:// or https://")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.lora = lora or None
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self.connect_timeout_s = connect_timeout_s
        self.spec = f"openai:{model}@{self.base_url}" + (f"#{self.lora}" if self.lora else "")
        self.label = f"openai:{model}@{self.base_url}" + (f" + LoRA {self.lora}" if self.lora else "")
        self._clients = LoopClients(self._new_client)

    @classmethod
    def from_spec(
        cls,
        spec: ModelSpec,
        *,
        lora: str | None = None,
        api_key: str | None = None,
        retries: int = 3,
        backoff_s: float = 0.5,
        connect_timeout_s: float = 10.0,
        **_other_backends: Any,
    ) -> OpenAIBackend:
        """Kwargs meant for other backends (host, adapters_dir ...) are ignored so that callers
        can pass one set for any spec."""
        if not spec.extra:
            raise UserError(f"model spec {spec} needs a server URL: openai:MODEL@http://host:port/v1")
        return cls(
            spec.name,
            spec.extra,
            lora=lora or spec.adapter,
            api_key=api_key,
            retries=retries,
            backoff_s=backoff_s,
            connect_timeout_s=connect_timeout_s,
        )

    @property
    def request_model(self) -> str:
        """The `model` field of each request: the LoRA adapter's name when one is set."""
        return self.lora or self.model

    def _new_client(self, timeout_s: float) -> httpx.AsyncClient:
        headers = {"Accept": "text/event-stream, application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=min(self.connect_timeout_s, timeout_s)),
            headers=headers,
        )

    def _client(self, timeout_s: float) -> httpx.AsyncClient:
        return self._clients.get(timeout_s)

    def _body(self, messages: list[Message], options: GenOptions) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.request_model,
            "messages": as_dicts(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": options.temperature,
            "max_tokens": options.max_tokens,
        }
        if options.seed is not None:
            body["seed"] = options.seed
        if options.stop:
            body["stop"] = list(options.stop)
        # num_ctx has no OpenAI field: the server fixes its context length at start-up.
        return body

    def _status_error(self, status: int, message: str) -> str:
        where = f"{self.base_url}/chat/completions"
        if status in (401, 403):
            return (
                f"the server at {self.base_url} refused the API key ({status}: {message}); "
                "set OPENAI_API_KEY or pass api_key"
            )
        if status == 404:
            return (
                f"{where} answered 404 ({message}); check that model {self.request_model} is served "
                "and that the URL is the API root (often ending in /v1)"
            )
        return f"{where} answered {status}: {message}"

    def stream(self, messages: list[Message], options: GenOptions) -> GeneratorStream:
        return GeneratorStream(lambda s: self._run(s, messages, options))

    async def _run(self, stream: GeneratorStream, messages: list[Message], options: GenOptions) -> AsyncIterator[str]:
        client = self._client(options.timeout_s)
        body = self._body(messages, options)
        url = f"{self.base_url}/chat/completions"
        sent = 0
        backoff = Backoff(self.retries, self.backoff_s)
        while True:
            usage: dict[str, Any] | None = None
            finish: str | None = None
            done = False
            try:
                async with client.stream("POST", url, json=body) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise _Status(response.status_code, _error_message(response))
                    async for line in response.aiter_lines():
                        # SSE: comments start with ':', other fields (event:, id:) carry nothing here.
                        # After [DONE] the body is read to its end, so the connection is reused.
                        if done or not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            done = True
                            continue
                        try:
                            chunk = json.loads(data)
                        except json.JSONDecodeError:
                            raise BackendError(
                                f"{self.base_url} sent an event that is not JSON: {data[:120]!r}"
                            ) from None
                        if chunk.get("error"):
                            err = chunk["error"]
                            msg = err.get("message", err) if isinstance(err, dict) else err
                            raise BackendError(f"{self.base_url} reported an error mid-reply: {msg}")
                        if chunk.get("usage"):
                            usage = chunk["usage"]
                        for choice in chunk.get("choices") or ():
                            text = (choice.get("delta") or {}).get("content")
                            if text:
                                sent += len(text)
                                yield text
                            if choice.get("finish_reason"):
                                finish = choice["finish_reason"]
                        if stream.stopped:
                            return
            except _Status as e:
                if e.status in RETRY_STATUSES and await backoff.retry(sent):
                    continue
                raise BackendError(self._status_error(e.status, e.message)) from None
            except httpx.ReadTimeout:
                raise BackendError(
                    f"{self.base_url} sent nothing for {options.timeout_s:g} s (timeout_s); "
                    "the model may be loading or stuck"
                ) from None
            except httpx.TransportError as e:
                if await backoff.retry(sent):
                    continue
                if sent == 0 and isinstance(e, (httpx.ConnectError, httpx.ConnectTimeout)):
                    raise BackendError(self._cannot_reach()) from None
                if sent == 0:
                    raise BackendError(
                        f"{self.base_url} dropped the connection before replying ({type(e).__name__}: {e})"
                    ) from None
                raise BackendError(
                    f"{self.base_url} cut the stream after {sent} characters of the reply "
                    f"({type(e).__name__}: {e})"
                ) from None
            if stream.stopped:
                return
            if not done and finish is None:
                raise BackendError(f"{self.base_url} ended the stream after {sent} characters before the reply was done")
            stream.finish_reason = finish
            if usage is not None:
                stream.usage = Usage(
                    prompt_tokens=int(usage.get("prompt_tokens") or 0),
                    completion_tokens=int(usage.get("completion_tokens") or 0),
                )
                stream.usage_estimated = False
            else:
                stream.usage = Usage(prompt_tokens=self.count_tokens(messages), completion_tokens=sent // 4)
                stream.usage_estimated = True
            return

    def _cannot_reach(self) -> str:
        return f"cannot reach the OpenAI-compatible server at {self.base_url}; is it running?"

    def count_tokens(self, messages: list[Message]) -> int:
        """A chars/4 estimate: the OpenAI API has no tokenize endpoint."""
        return estimate_tokens(messages)

    async def served_models(self) -> list[str]:
        """Model ids the server lists at GET /models (LoRA adapters included on vLLM)."""
        client = self._client(min(30.0, self.connect_timeout_s * 3))
        try:
            response = await client.get(f"{self.base_url}/models")
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise UserError(self._cannot_reach()) from None
        except httpx.TransportError as e:
            raise UserError(f"{self.base_url}/models failed: {type(e).__name__}: {e}") from None
        if response.status_code in (401, 403):
            raise UserError(self._status_error(response.status_code, _error_message(response)))
        if response.status_code == 404:
            raise UserError(
                f"{self.base_url}/models answered 404; is {self.base_url} the API root (often ending in /v1)?"
            )
        if response.status_code >= 400:
            raise UserError(
                f"{self.base_url}/models answered {response.status_code}: {_error_message(response)}"
            )
        try:
            data = response.json().get("data") or []
            return [str(item["id"]) for item in data]
        except (ValueError, AttributeError, KeyError, TypeError):
            raise UserError(f"{self.base_url}/models did not answer with a model list") from None

    async def check(self) -> None:
        served = await self.served_models()
        if self.request_model not in served:
            what = f"LoRA adapter {self.lora}" if self.lora else f"model {self.model}"
            listing = ", ".join(served[:10]) + (" ..." if len(served) > 10 else "") if served else "nothing"
            raise UserError(f"{what} is not served at {self.base_url}; it serves: {listing}")

    async def aclose(self) -> None:
        for client in self._clients.take_all():
            with contextlib.suppress(Exception):
                await client.aclose()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "url": self.base_url, "model": self.model, "lora": self.lora}
