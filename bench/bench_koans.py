"""The whole koan suite with scripted:oracle, every step recorded: wall time at
concurrency 2 beside concurrency 1 in the same process. Every koan must resolve."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from looper_engine.agent.runner import Runner
from looper_engine.config import AgentConfig
from looper_engine.events import EventBus
from looper_engine.models.scripted import ScriptedBackend
from looper_engine.store.db import Store
from looper_engine.store.writer import StoreWriter
from looper_engine.tasks.suites import load_suite


async def suite(concurrency: int) -> tuple[float, int, int, int]:
    with tempfile.TemporaryDirectory() as d:
        store = await Store.open(Path(d) / "k.db")
        bus = EventBus()
        writer = StoreWriter(store, bus).start()
        tasks = load_suite("koans")
        t0 = time.perf_counter()
        result = await Runner(tasks, ScriptedBackend("oracle"), AgentConfig(), bus, concurrency=concurrency).run()
        await writer.close()
        wall = time.perf_counter() - t0
        cur = await store.db.execute("SELECT count(*) FROM steps")
        (steps,) = await cur.fetchone()
        await store.close()
        return wall, result.resolved, len(tasks), steps


async def main() -> None:
    c2 = await suite(2)
    c1 = await suite(1)
    print("koan suite, scripted:oracle (a scripted policy), store recording on")
    for name, (wall, k, n, steps) in (("concurrency 2", c2), ("concurrency 1 (baseline)", c1)):
        print(f"  {name:<26} {wall:7.1f} s   resolved {k}/{n}   steps recorded {steps}")
    print(f"  speed-up                   {c1[0] / c2[0]:7.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
