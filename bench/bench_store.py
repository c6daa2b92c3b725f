"""Store write throughput: events per second through the batched StoreWriter, against
a baseline that commits each event on its own (same process, same machine, same events).

Target: at least 20,000 events/s batched."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from looper_engine.events import BudgetUpdate, EventBus, ModelOutput, Observation, ToolResult
from looper_engine.store.db import Store
from looper_engine.store.writer import StoreWriter


def make_events(n: int, ep: str) -> list:
    out = []
    for i in range(n):
        step = i // 4 + 1
        k = i % 4
        if k == 0:
            out.append(ModelOutput(episode_id=ep, step=step, text="<bash>pytest -q</bash>", prompt_tokens=900))
        elif k == 1:
            out.append(ToolResult(episode_id=ep, step=step, tool="bash", ok=True, exit_code=0, output="3 passed" * 20))
        elif k == 2:
            out.append(Observation(episode_id=ep, step=step, text="3 passed (exit code 0)"))
        else:
            out.append(BudgetUpdate(episode_id=ep, step=step, context_tokens=1000, budget=8192))
    return out


async def batched(n: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        store = await Store.open(Path(d) / "b.db")
        bus = EventBus()
        writer = StoreWriter(store, bus).start()
        events = make_events(n, "e")
        t0 = time.perf_counter()
        for i, ev in enumerate(events):
            bus.publish(ev)
            if i % 500 == 0:
                await asyncio.sleep(0)  # the agent yields between steps
        await writer.close()
        dt = time.perf_counter() - t0
        await store.close()
        return n / dt


async def per_event(n: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        store = await Store.open(Path(d) / "b.db")
        bus = EventBus()
        writer = StoreWriter(store, bus)
        events = make_events(n, "e")
        t0 = time.perf_counter()
        for ev in events:
            bus.publish(ev)
            await writer.flush()  # one transaction per event
        dt = time.perf_counter() - t0
        await store.close()
        return n / dt


async def main() -> None:
    reps = 5
    b = [await batched(20_000) for _ in range(reps)]
    p = [await per_event(2_000) for _ in range(reps)]
    mb, mp = statistics.median(b), statistics.median(p)
    print(f"store writes, median of {reps} runs")
    print(f"  batched writer      : {mb:10,.0f} events/s   (target >= 20,000)")
    print(f"  one commit per event: {mp:10,.0f} events/s   (baseline)")
    print(f"  ratio               : {mb / mp:10.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
