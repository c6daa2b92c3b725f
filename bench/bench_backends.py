"""What Looper's backends cost over the bare clients they wrap, measured in one process.

    .venv/bin/python bench/bench_backends.py [--runs N] [--no-mlx]

Ollama and OpenAI-compatible: time to first delta and deltas/s through OllamaBackend /
OpenAIBackend against ollama.AsyncClient.chat(stream=True) / raw httpx SSE, both against the
same local fake server (tests/models/model_servers.py). MLX: generated tokens/s through
MlxBackend against mlx_lm.stream_generate alone on the tiny model, and an adapter swap against
a full mlx_lm.load(path, adapter_path=...). Runs alternate between the sides; figures are
medians, and each ratio is the median of run-by-run ratios (steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from looper_engine.chat import Message  # noqa: E402
from looper_engine.models.base import GenOptions  # noqa: E402


def _load_servers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("model_servers", ROOT / "tests/models/model_servers.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["model_servers"] = module
    spec.loader.exec_module(module)
    return module


MESSAGES = [
    Message(role="system", content="You are a coding agent. Use one tool per turn."),
    Message(role="user", content="Run the tests and fix what fails."),
]
REPLY = ("I will run the tests first to see what fails.\n<bash>pytest -q tests/</bash>\n" * 30)[:2400]


async def timed(deltas: AsyncIterator[str]) -> tuple[float, float, int]:
    """(seconds to first delta, deltas per second after it, delta count)."""
    start = time.perf_counter()
    first = None
    n = 0
    async for _ in deltas:
        n += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    first = first or end
    rate = (n - 1) / (end - first) if n > 1 and end > first else float("nan")
    return first - start, rate, n


def paired(bare: list[float], looper: list[float]) -> float:
    """Median of the run-by-run looper/bare ratios: neighbouring runs share the machine's load,
    so their ratio drifts less than a ratio of medians on a busy box."""
    return statistics.median(lp / b for b, lp in zip(bare, looper, strict=True) if b > 0)


async def compare(
    label: str, bare: Callable[[], AsyncIterator[str]], looper: Callable[[], AsyncIterator[str]], runs: int
) -> None:
    results: dict[str, list[tuple[float, float, int]]] = {"bare": [], "looper": []}
    for _ in range(2):  # warm both: connection pools, imports
        await timed(bare())
        await timed(looper())
    for i in range(runs):
        # alternate who goes first, so neither side always meets a warmer cache
        order = ("bare", "looper") if i % 2 == 0 else ("looper", "bare")
        for side in order:
            results[side].append(await timed((bare if side == "bare" else looper)()))
    b, lp = results["bare"], results["looper"]
    b_ttfd, l_ttfd = statistics.median(r[0] for r in b), statistics.median(r[0] for r in lp)
    b_rate, l_rate = statistics.median(r[1] for r in b), statistics.median(r[1] for r in lp)
    print(f"{label}")
    print(f"  time to first delta   bare {b_ttfd * 1000:7.2f} ms   looper {l_ttfd * 1000:7.2f} ms   "
          f"ratio {paired([r[0] for r in b], [r[0] for r in lp]):5.2f}")
    print(f"  deltas/s              bare {b_rate:9.0f}   looper {l_rate:9.0f}   "
          f"ratio {paired([r[1] for r in b], [r[1] for r in lp]):5.2f}   ({b[0][2]} / {lp[0][2]} deltas)")


async def bench_ollama(servers: ModuleType, runs: int) -> None:
    import ollama

    from looper_engine.models.ollama_backend import OllamaBackend

    with servers.FakeOllama({"bench:1b": servers.FakeModel(reply=REPLY, piece=4)}) as server:
        client = ollama.AsyncClient(host=server.url)
        backend = OllamaBackend("bench:1b", host=server.url)
        payload = [m.as_dict() for m in MESSAGES]

        async def bare() -> AsyncIterator[str]:
            async for part in await client.chat(model="bench:1b", messages=payload, stream=True,
                                                options={"temperature": 0.0, "num_predict": 2048}):
                if part.message.content:
                    yield part.message.content

        def looper() -> AsyncIterator[str]:
            return backend.stream(MESSAGES, GenOptions()).__aiter__()

        await compare("ollama (fake server, 600 chunks)", bare, looper, runs)
        await backend.aclose()
        await client._client.aclose()


async def bench_openai(servers: ModuleType, runs: int) -> None:
    import httpx

    from looper_engine.models.openai_backend import OpenAIBackend

    with servers.FakeOpenAI({"bench": servers.FakeModel(reply=REPLY, piece=4)}) as server:
        client = httpx.AsyncClient(timeout=60)
        backend = OpenAIBackend("bench", server.api_url)
        body = {"model": "bench", "messages": [m.as_dict() for m in MESSAGES], "stream": True,
                "stream_options": {"include_usage": True}, "temperature": 0.0, "max_tokens": 2048}

        async def bare() -> AsyncIterator[str]:
            async with client.stream("POST", f"{server.api_url}/chat/completions", json=body) as r:
                async for line in r.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        continue  # read to the end so the connection is reused
                    for choice in json.loads(data).get("choices") or ():
                        text = choice["delta"].get("content")
                        if text:
                            yield text

        def looper() -> AsyncIterator[str]:
            return backend.stream(MESSAGES, GenOptions()).__aiter__()

        await compare("openai SSE (fake server, 600 chunks)", bare, looper, runs)
        await backend.aclose()
        await client.aclose()


async def bench_mlx(runs: int) -> None:
    import mlx.core as mx
    import mlx_lm
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.utils import linear_to_lora_layers

    from looper_engine.models.mlx_backend import MlxBackend
    from looper_engine.models.tiny import build_tiny_model

    tmp = Path(tempfile.mkdtemp(prefix="looper-bench-"))
    path = build_tiny_model(tmp / "tiny")
    max_tokens = 400
    options = GenOptions(temperature=0.0, max_tokens=max_tokens)

    model, tokenizer = mlx_lm.load(str(path))
    prompt = tokenizer.apply_chat_template([m.as_dict() for m in MESSAGES], add_generation_prompt=True)

    def bare() -> float:
        start = time.perf_counter()
        n = 0
        for r in mlx_lm.stream_generate(model, tokenizer, prompt, max_tokens=max_tokens):
            n = r.generation_tokens
        return n / (time.perf_counter() - start)

    backend = MlxBackend(path)
    await backend.load()

    async def looper() -> float:
        start = time.perf_counter()
        stream = backend.stream(MESSAGES, options)
        async for _ in stream:
            pass
        return stream.usage.completion_tokens / (time.perf_counter() - start)

    # mlx-lm runs measurably faster off the main thread (its generation stream is thread-local),
    # so the bare loop is timed both where a script runs it and on a worker thread like Looper's:
    # the second isolates what Looper adds (batching, the queue, stop checks).
    worker = ThreadPoolExecutor(max_workers=1)

    async def bare_worker() -> float:
        return await asyncio.get_running_loop().run_in_executor(worker, bare)

    bare()
    await bare_worker()
    await looper()
    b, bw, lp = [], [], []
    for i in range(runs):
        steps = [("b", bare_worker), ("w", None), ("l", looper)]
        if i % 2:
            steps.reverse()
        for key, fn in steps:
            if key == "w":
                b.append(bare())
            elif key == "b":
                bw.append(await fn())
            else:
                lp.append(await fn())
    worker.shutdown()
    print(f"mlx tiny model ({max_tokens} tokens, greedy)")
    print(f"  tokens/s              bare (main thread) {statistics.median(b):6.0f}   "
          f"bare (worker thread) {statistics.median(bw):6.0f}   looper {statistics.median(lp):6.0f}")
    print(f"  ratio looper / bare   vs worker thread {paired(bw, lp):5.2f}   vs main thread {paired(b, lp):5.2f}"
          "   (target >= 0.95)")

    adapters = []
    for seed in (1, 2):
        m, _ = mlx_lm.load(str(path))
        m.freeze()
        lora = {"rank": 8, "scale": 10.0, "dropout": 0.0}
        linear_to_lora_layers(m, 2, lora)
        mx.random.seed(seed)
        weights = {k: mx.random.normal(v.shape) * 0.1 for k, v in tree_flatten(m.trainable_parameters())}
        out = tmp / f"adapter-{seed}"
        out.mkdir()
        mx.save_safetensors(str(out / "adapters.safetensors"), weights)
        (out / "adapter_config.json").write_text(
            json.dumps({"fine_tune_type": "lora", "num_layers": 2, "lora_parameters": lora})
        )
        adapters.append(out)

    await backend.load_adapter(adapters[0])  # the first swap also puts the LoRA layers in
    swaps, reloads = [], []
    for i in range(runs):
        start = time.perf_counter()
        await backend.load_adapter(adapters[(i + 1) % 2])
        swaps.append(time.perf_counter() - start)
        start = time.perf_counter()
        m, _ = mlx_lm.load(str(path), adapter_path=str(adapters[i % 2]))
        mx.eval(m.parameters())
        reloads.append(time.perf_counter() - start)
    s_med, r_med = statistics.median(swaps), statistics.median(reloads)
    print(f"  adapter swap          full reload {r_med * 1000:7.1f} ms   swap {s_med * 1000:7.1f} ms   "
          f"ratio {paired(reloads, swaps):5.2f}   (a 2-layer 128-wide model: the gap grows with the base)")
    await backend.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-mlx", action="store_true")
    args = parser.parse_args()
    servers = _load_servers()
    await bench_ollama(servers, args.runs)
    await bench_openai(servers, args.runs)
    if not args.no_mlx:
        await bench_mlx(args.runs)


if __name__ == "__main__":
    asyncio.run(main())
