"""Engine overhead per step: the agent loop with a scripted backend, every event recorded in
the store, no subprocess in the steps (reads only). Printed beside the baseline of the same
tool calls executed bare, so `overhead = step - tool`. Target: under 0.5 ms, flat from 50 to
800 steps (recording is O(1) per step)."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from looper_engine.agent.episode import Episode
from looper_engine.chat import Message
from looper_engine.config import AgentConfig
from looper_engine.events import ContextBuilt, EventBus
from looper_engine.models.base import Backend, GenOptions
from looper_engine.models.scripted import ScriptedStream
from looper_engine.protocol.calls import ReadCall
from looper_engine.store.db import Store
from looper_engine.store.writer import StoreWriter
from looper_engine.tasks.model import Task
from looper_engine.tools.runner import execute
from looper_engine.tools.workspace import Workspace

CALLS = ["<read>mod.py</read>", "<read>mod.py:1-5</read>", "<read>util.py</read>"]


class ReaderBackend(Backend):
    """Reads files in a cycle; never finishes (the step limit ends it)."""

    spec = "bench:reader"
    label = "bench reader"
    scripted = True

    def __init__(self) -> None:
        self.turn = 0

    def for_task(self, task: Task) -> Backend:
        return ReaderBackend()

    def stream(self, messages: list[Message], options: GenOptions) -> ScriptedStream:
        text = f"Looking again.\n{CALLS[self.turn % len(CALLS)]}"
        self.turn += 1
        return ScriptedStream(text, rate=0)


def make_task(root: Path) -> Task:
    src = root / "task"
    src.mkdir()
    (src / "mod.py").write_text("\n".join(f"x{i} = {i}" for i in range(40)) + "\n")
    (src / "util.py").write_text("def f():\n    return 1\n")
    (src / "test_mod.py").write_text("def test_ok():\n    assert True\n")
    return Task(id="bench/reader", suite="bench", family="bench", statement="bench", source_dir=src)


async def one_run(steps: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        task = make_task(root)
        store = await Store.open(root / "b.db")
        bus = EventBus()
        writer = StoreWriter(store, bus).start()
        stamps: list[float] = []
        cfg = AgentConfig(max_steps=steps, token_budget=2048, same_file_read_limit=10**6,
                          repeat_call_limit=10**6, no_progress_steps=10**6)
        ep = Episode(task, ReaderBackend(), cfg, bus, run_id=None)

        # Each step starts with a context_built event: time-stamp it as it is published.
        orig = bus.publish

        def publish(ev):  # noqa: ANN001, ANN202
            if isinstance(ev, ContextBuilt):
                stamps.append(time.perf_counter())
            return orig(ev)

        bus.publish = publish  # type: ignore[method-assign]
        await ep.run()
        await writer.close()
        await store.close()
        per_step = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        # baseline: the same tool calls, bare
        ws = await Workspace.create(task.source_dir)
        calls = [ReadCall(path="mod.py"), ReadCall(path="mod.py", start=1, end=5), ReadCall(path="util.py")]
        tool_times = []
        settings = cfg.tool_settings()
        for i in range(steps):
            t0 = time.perf_counter()
            await execute(calls[i % 3], ws, settings)
            tool_times.append(time.perf_counter() - t0)
        ws.cleanup()
        return statistics.median(per_step), statistics.median(tool_times)


async def main() -> None:
    print("engine overhead per step (scripted backend, store recording on, reads only)")
    print(f"{'steps':>6} {'step ms':>9} {'tool ms':>9} {'overhead ms':>12}")
    for steps in (50, 200, 800):
        runs = [await one_run(steps) for _ in range(3)]
        step = statistics.median(r[0] for r in runs) * 1000
        tool = statistics.median(r[1] for r in runs) * 1000
        print(f"{steps:>6} {step:>9.3f} {tool:>9.3f} {step - tool:>12.3f}")


if __name__ == "__main__":
    asyncio.run(main())
