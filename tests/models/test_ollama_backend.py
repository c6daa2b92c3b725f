"""The Ollama backend through the real `ollama` client against a local server that speaks its
protocol, faults included."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from model_servers import FakeModel, FakeOllama, free_closed_port

from looper_engine.chat import Message
from looper_engine.errors import BackendError, UserError
from looper_engine.models import create_backend
from looper_engine.models.base import GenOptions
from looper_engine.models.ollama_backend import OllamaBackend, list_models

MESSAGES = [
    Message(role="system", content="You are a careful coding agent."),
    Message(role="user", content="Fix the failing test in tests/test_math.py, please."),
]
REPLY = "I will read the test first.\n<read>tests/test_math.py</read>"


@pytest.fixture
def server() -> Iterator[FakeOllama]:
    with FakeOllama({"qwen-fake:1b": FakeModel(reply=REPLY, prompt_eval_count=31, eval_count=14)}) as s:
        yield s


def backend_for(server: FakeOllama, **kwargs: object) -> OllamaBackend:
    kwargs.setdefault("backoff_s", 0.01)
    backend = create_backend("ollama:qwen-fake:1b", host=server.url, **kwargs)
    assert isinstance(backend, OllamaBackend)
    return backend


async def collect(backend: OllamaBackend, options: GenOptions | None = None) -> tuple[list[str], object]:
    stream = backend.stream(MESSAGES, options or GenOptions())
    deltas = [d async for d in stream]
    return deltas, stream


async def test_stream_yields_the_reply_and_the_servers_usage(server: FakeOllama) -> None:
    backend = backend_for(server)
    deltas, stream = await collect(backend)
    assert len(deltas) > 1, "the reply arrives as several deltas, not one blob"
    assert "".join(deltas) == REPLY
    assert stream.usage is not None
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (31, 14)
    assert stream.finish_reason == "stop"
    await backend.aclose()


async def test_options_and_messages_reach_the_server(server: FakeOllama) -> None:
    backend = backend_for(server)
    options = GenOptions(temperature=0.7, max_tokens=321, seed=42, stop=["</bash>", "</done>"], num_ctx=8192)
    await collect(backend, options)
    (body,) = server.bodies("/api/chat")
    assert body["model"] == "qwen-fake:1b"
    assert body["stream"] is True
    assert body["messages"] == [m.as_dict() for m in MESSAGES]
    assert body["options"] == {
        "temperature": 0.7,
        "num_predict": 321,
        "seed": 42,
        "stop": ["</bash>", "</done>"],
        "num_ctx": 8192,
    }
    await backend.aclose()


async def test_host_comes_from_ollama_host_when_not_given(server: FakeOllama, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{server.port}")
    backend = create_backend("ollama:qwen-fake:1b")
    assert backend.host == server.url
    await backend.check()


async def test_count_tokens_is_refined_by_the_servers_prompt_count(server: FakeOllama) -> None:
    backend = backend_for(server)
    before = backend.count_tokens(MESSAGES)
    await collect(backend)
    assert before != 31
    assert backend.count_tokens(MESSAGES) == 31


async def test_check_passes_for_a_pulled_model(server: FakeOllama) -> None:
    await backend_for(server).check()
    assert server.bodies("/api/show") == [{"model": "qwen-fake:1b"}]


async def test_check_names_the_pull_command_for_a_missing_model(server: FakeOllama) -> None:
    backend = create_backend("ollama:llama9:70b", host=server.url)
    with pytest.raises(UserError) as info:
        await backend.check()
    assert str(info.value) == f"model llama9:70b is not available on {server.url}; run `ollama pull llama9:70b`"


async def test_stream_of_a_missing_model_is_a_backend_error(server: FakeOllama) -> None:
    backend = create_backend("ollama:llama9:70b", host=server.url, backoff_s=0.01)
    with pytest.raises(BackendError, match=r"model llama9:70b is not available on .*; run `ollama pull llama9:70b`"):
        await collect(backend)
    assert len(server.bodies("/api/chat")) == 1, "a missing model is not retried"


async def test_server_not_running_says_how_to_start_it() -> None:
    url = f"http://127.0.0.1:{free_closed_port()}"
    backend = create_backend("ollama:qwen-fake:1b", host=url, retries=1, backoff_s=0.01)
    with pytest.raises(UserError) as info:
        await backend.check()
    assert str(info.value) == f"cannot reach Ollama at {url}; start it with `ollama serve`"
    with pytest.raises(BackendError) as err:
        await collect(backend)
    assert str(err.value) == f"cannot reach Ollama at {url}; start it with `ollama serve`"


async def test_dropped_connections_before_the_first_delta_are_retried(server: FakeOllama) -> None:
    server.faults.drop_first = 2
    backend = backend_for(server, retries=3)
    deltas, stream = await collect(backend)
    assert "".join(deltas) == REPLY
    assert len(server.bodies("/api/chat")) == 3


async def test_retries_give_up_after_the_configured_count(server: FakeOllama) -> None:
    server.faults.drop_first = 5
    backend = backend_for(server, retries=2)
    with pytest.raises(BackendError, match="dropped the connection before replying"):
        await collect(backend)
    assert len(server.bodies("/api/chat")) == 3


async def test_busy_server_is_retried(server: FakeOllama) -> None:
    server.faults.status = 503
    backend = backend_for(server, retries=1)
    with pytest.raises(BackendError, match="answered 503: fault 503"):
        await collect(backend)
    assert len(server.bodies("/api/chat")) == 2


async def test_stream_cut_mid_reply_is_an_error_and_not_restarted(server: FakeOllama) -> None:
    server.faults.cut_after = 4
    backend = backend_for(server, retries=3)
    stream = backend.stream(MESSAGES, GenOptions())
    received: list[str] = []
    with pytest.raises(BackendError) as info:
        async for delta in stream:
            received.append(delta)
    assert "".join(received) == REPLY[:12]
    assert f"Ollama at {server.url} cut the stream after 12 characters" in str(info.value)
    assert len(server.bodies("/api/chat")) == 1, "a stream cut after text arrived is never restarted"
    assert stream.usage is None


async def test_slow_server_times_out_with_a_clear_reason(server: FakeOllama) -> None:
    server.faults.delay_s = 5.0
    backend = backend_for(server)
    with pytest.raises(BackendError) as info:
        await collect(backend, GenOptions(timeout_s=0.3))
    assert str(info.value) == (
        f"Ollama at {server.url} sent nothing for 0.3 s (timeout_s); the model may be loading or stuck"
    )


async def test_aclose_stops_a_stream_early(server: FakeOllama) -> None:
    backend = backend_for(server)
    stream = backend.stream(MESSAGES, GenOptions())
    got = []
    async for delta in stream:
        got.append(delta)
        if len(got) == 2:
            await stream.aclose()
            break
    assert got == [REPLY[:3], REPLY[3:6]]
    # the backend serves the next call normally
    deltas, _ = await collect(backend)
    assert "".join(deltas) == REPLY


async def test_list_models_reads_the_servers_tags(server: FakeOllama) -> None:
    server.models["llama3.2:3b"] = FakeModel()
    rows = await list_models(server.url)
    assert [r["name"] for r in rows] == ["llama3.2:3b", "qwen-fake:1b"]
    assert rows[1]["size"] == 1_234_567_890
    assert rows[1]["modified"].year == 2025
    assert rows[1]["parameter_size"] == "1.2B"


async def test_list_models_with_no_server_is_one_clear_line() -> None:
    url = f"http://127.0.0.1:{free_closed_port()}"
    with pytest.raises(UserError, match=r"^cannot reach Ollama at .*; start it with `ollama serve`$"):
        await list_models(url)
