"""Synthesis of training data from 1,000 stored episodes, against reading the same events.

The episodes (4 steps each, resolved, as the oracle records them) are written through the
StoreWriter. Printed as medians over the runs:

  read events   every episode's events read back and decoded (the floor synthesis stands on)
  synthesize    `synthesize()`: trajectories rebuilt, samples made in the inference format,
                every assistant turn re-parsed (the format check), near duplicates removed,
                the train/valid split

Usage:  .venv/bin/python bench/bench_synth.py [--episodes 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from looper_engine.consolidation.synth import synthesize
from looper_engine.events import (
    CallParsed,
    ContextBuilt,
    EpisodeFinished,
    EpisodeStarted,
    EventBus,
    ModelOutput,
    Observation,
    ToolResult,
)
from looper_engine.store.db import Store
from looper_engine.store.writer import StoreWriter

FAMILIES = ["off_by_one", "wrong_operator", "dict_set", "async", "exceptions"]
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()


def word(i: int) -> str:
    """A name that differs per episode in letters, not only digits (digits are normalised
    away by the near-duplicate check)."""
    return "_".join(WORDS[(i // len(WORDS) ** k) % len(WORDS)] for k in range(3))


async def record(db: Path, n: int) -> None:
    store = await Store.open(db)
    bus = EventBus()
    writer = StoreWriter(store, bus, linger_s=0).start()
    for i in range(n):
        family = FAMILIES[i % len(FAMILIES)]
        ep = {"episode_id": f"ep-{i:05d}"}
        task = f"{family}/task_{i // len(FAMILIES)}"
        bus.publish(EpisodeStarted(**ep, task_id=task, suite="koans", family=family, model="scripted:oracle",
                                   model_label="scripted policy: oracle", scripted=True,
                                   system_prompt="You fix bugs. One tool call per reply.",
                                   task_prompt=f"Task {task}: the tests fail.", max_steps=8, token_budget=8192))
        calls = [("read", f"{word(i)}.py", f"<read>{word(i)}.py</read>", {"tool": "read", "path": f"{word(i)}.py"}),
                 ("bash", "python -m pytest -q", "<bash>python -m pytest -q</bash>",
                  {"tool": "bash", "command": "python -m pytest -q"}),
                 ("done", f"fixed {task}", f"<done>fixed {task}</done>", {"tool": "done", "summary": f"fixed {task}"})]
        for step, (tool, target, text, call) in enumerate(calls, start=1):
            bus.publish(ContextBuilt(**ep, step=step, n_messages=2 * step, context_tokens=300 * step, budget=8192))
            bus.publish(ModelOutput(**ep, step=step, text=f"Step {step} of {task}.\n{text}"))
            bus.publish(CallParsed(**ep, step=step, tool=tool, target=target, call=call))
            bus.publish(ToolResult(**ep, step=step, tool=tool, ok=True, exit_code=0, output=f"output of {word(i)} {step}"))
            bus.publish(Observation(**ep, step=step, text=f"output of {word(i)} {step}"))
        bus.publish(EpisodeFinished(**ep, status="resolved", resolved=True, reason="done", steps=len(calls)))
        if i % 200 == 0:
            await writer.flush()
    await writer.close()
    await store.close()


async def read_all(db: Path) -> float:
    store = await Store.open(db)
    t0 = time.perf_counter()
    for ep in await store.episodes(limit=10_000_000):
        await store.events(ep.id)
    dt = time.perf_counter() - t0
    await store.close()
    return dt


async def synth(db: Path) -> tuple[float, int]:
    store = await Store.open(db)
    t0 = time.perf_counter()
    data = await synthesize(store)
    dt = time.perf_counter() - t0
    await store.close()
    return dt, data.stats.samples


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "lab.db"
        t0 = time.perf_counter()
        await record(db, args.episodes)
        print(f"{args.episodes:,} episodes recorded in {time.perf_counter() - t0:.1f}s")
        reads, synths, samples = [], [], 0
        for _ in range(args.runs):
            reads.append(await read_all(db))
            dt, samples = await synth(db)
            synths.append(dt)
        r, s = statistics.median(reads), statistics.median(synths)
        print(f"read events (baseline)   {r:7.2f} s")
        print(f"synthesize               {s:7.2f} s   {samples:,} samples   ratio {s / r:.1f}x the read")


if __name__ == "__main__":
    asyncio.run(main())
