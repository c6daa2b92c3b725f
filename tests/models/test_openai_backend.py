"""The OpenAI-compatible backend (httpx + SSE) against a local server shaped like vLLM's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from model_servers import FakeModel, FakeOpenAI, free_closed_port

from looper_engine.chat import Message
from looper_engine.errors import BackendError, UserError
from looper_engine.models import create_backend
from looper_engine.models.base import GenOptions
from looper_engine.models.openai_backend import OpenAIBackend

MESSAGES = [
    Message(role="system", content="You are a careful coding agent."),
    Message(role="user", content="List the files."),
]
REPLY = "Let me look.\n<bash>ls -la</bash>"
BASE = "Qwen/Qwen2.5-Coder-7B-Instruct"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    models = {
        BASE: FakeModel(reply=REPLY, prompt_eval_count=40, eval_count=11),
        "koans-c3": FakeModel(reply="<done>adapter reply</done>", prompt_eval_count=40, eval_count=6),
    }
    with FakeOpenAI(models) as s:
        yield s


def backend_for(server: FakeOpenAI, model: str = BASE, **kwargs: object) -> OpenAIBackend:
    kwargs.setdefault("backoff_s", 0.01)
    backend = create_backend(f"openai:{model}@{server.api_url}", **kwargs)
    assert isinstance(backend, OpenAIBackend)
    return backend


async def collect(backend: OpenAIBackend, options: GenOptions | None = None) -> tuple[list[str], object]:
    stream = backend.stream(MESSAGES, options or GenOptions())
    deltas = [d async for d in stream]
    return deltas, stream


async def test_stream_yields_the_reply_and_the_usage_chunk(server: FakeOpenAI) -> None:
    backend = backend_for(server)
    deltas, stream = await collect(backend)
    assert len(deltas) > 1
    assert "".join(deltas) == REPLY
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (40, 11)
    assert stream.usage_estimated is False
    assert stream.finish_reason == "stop"
    await backend.aclose()


async def test_request_body_carries_streaming_usage_and_options(server: FakeOpenAI) -> None:
    backend = backend_for(server)
    await collect(backend, GenOptions(temperature=0.2, max_tokens=99, seed=7, stop=["</bash>"], num_ctx=4096))
    (body,) = server.bodies("/v1/chat/completions")
    assert body == {
        "model": BASE,
        "messages": [m.as_dict() for m in MESSAGES],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.2,
        "max_tokens": 99,
        "seed": 7,
        "stop": ["</bash>"],
    }


async def test_lora_name_is_the_requested_model(server: FakeOpenAI) -> None:
    backend = backend_for(server, lora="koans-c3")
    assert "LoRA koans-c3" in backend.label
    await backend.check()
    deltas, _ = await collect(backend)
    assert "".join(deltas) == "<done>adapter reply</done>"
    assert server.bodies("/v1/chat/completions")[0]["model"] == "koans-c3"


async def test_api_key_is_sent_and_a_wrong_one_is_refused(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    server.api_key = "sk-right"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-right")
    deltas, _ = await collect(backend_for(server))
    assert "".join(deltas) == REPLY
    wrong = backend_for(server, api_key="sk-wrong")
    with pytest.raises(BackendError, match=r"refused the API key \(401: Incorrect API key provided.\)"):
        await collect(wrong)
    with pytest.raises(UserError, match="refused the API key"):
        await wrong.check()


async def test_usage_is_estimated_when_the_server_sends_none(server: FakeOpenAI) -> None:
    server.sends_usage = False
    backend = backend_for(server)
    deltas, stream = await collect(backend)
    assert "".join(deltas) == REPLY
    assert stream.usage_estimated is True
    assert stream.usage.prompt_tokens == backend.count_tokens(MESSAGES)
    assert stream.usage.completion_tokens == len(REPLY) // 4


async def test_check_lists_what_the_server_serves_when_the_model_is_missing(server: FakeOpenAI) -> None:
    await backend_for(server).check()
    with pytest.raises(UserError) as info:
        await backend_for(server, model="llama-70b").check()
    assert str(info.value) == f"model llama-70b is not served at {server.api_url}; it serves: {BASE}, koans-c3"


async def test_missing_model_in_a_request_is_a_clear_backend_error(server: FakeOpenAI) -> None:
    with pytest.raises(BackendError) as info:
        await collect(backend_for(server, model="llama-70b"))
    assert "answered 404 (The model `llama-70b` does not exist.)" in str(info.value)
    assert len(server.requests) == 1, "a 404 is not retried"


async def test_url_without_the_api_root_is_pointed_out(server: FakeOpenAI) -> None:
    backend = create_backend(f"openai:{BASE}@{server.url}")
    with pytest.raises(UserError, match=r"/models answered 404; is .* the API root \(often ending in /v1\)\?"):
        await backend.check()


async def test_server_not_running() -> None:
    url = f"http://127.0.0.1:{free_closed_port()}/v1"
    backend = create_backend(f"openai:{BASE}@{url}", retries=1, backoff_s=0.01)
    message = f"cannot reach the OpenAI-compatible server at {url}; is it running?"
    with pytest.raises(UserError) as info:
        await backend.check()
    assert str(info.value) == message
    with pytest.raises(BackendError) as err:
        await collect(backend)
    assert str(err.value) == message


async def test_stream_cut_mid_reply_is_an_error_and_not_restarted(server: FakeOpenAI) -> None:
    server.faults.cut_after = 3
    backend = backend_for(server, retries=3)
    received: list[str] = []
    with pytest.raises(BackendError) as info:
        async for delta in backend.stream(MESSAGES, GenOptions()):
            received.append(delta)
    assert "".join(received) == REPLY[:9]
    assert f"{server.api_url} cut the stream after 9 characters" in str(info.value)
    assert len(server.bodies("/v1/chat/completions")) == 1


async def test_dropped_connections_before_the_first_delta_are_retried(server: FakeOpenAI) -> None:
    server.faults.drop_first = 2
    deltas, _ = await collect(backend_for(server, retries=2))
    assert "".join(deltas) == REPLY
    assert len(server.bodies("/v1/chat/completions")) == 3


async def test_overloaded_server_is_retried_then_reported(server: FakeOpenAI) -> None:
    server.faults.status = 503
    with pytest.raises(BackendError, match=r"/chat/completions answered 503: fault 503$"):
        await collect(backend_for(server, retries=2))
    assert len(server.bodies("/v1/chat/completions")) == 3


async def test_slow_server_times_out(server: FakeOpenAI) -> None:
    server.faults.delay_s = 5.0
    with pytest.raises(BackendError) as info:
        await collect(backend_for(server), GenOptions(timeout_s=0.3))
    assert str(info.value) == f"{server.api_url} sent nothing for 0.3 s (timeout_s); the model may be loading or stuck"


def test_spec_without_a_url_is_a_user_error() -> None:
    with pytest.raises(UserError, match="needs a server URL"):
        create_backend("openai:gpt-4o")
