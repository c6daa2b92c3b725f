"""What the experiment machinery costs on top of a plain run, measured in the same process.

Baseline: `Runner` on N koans with scripted:oracle (unthrottled), recorded by a StoreWriter,
exactly as `looper run` does. Experiment: the same N tasks as one chunk, zero-shot reference
plus one static arm (so N episodes run and N cells are reused), recorded cell by cell. Then the
same experiment run again when finished: the cost of skipping a recorded cell on resume.

Printed as medians over the runs:

  run s/episode        baseline and experiment, wall time per episode
  overhead             experiment / baseline
  resume ms/cell       a finished experiment run again, per recorded cell

Usage:  .venv/bin/python bench/bench_experiment.py [--runs 3] [--tasks 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from looper_engine.agent.runner import Runner
from looper_engine.config import AgentConfig
from looper_engine.evaluation.cycle import ExperimentRunner
from looper_engine.evaluation.experiment import parse_experiment, plan_experiment
from looper_engine.events import EventBus
from looper_engine.models.registry import create_backend
from looper_engine.store.db import Store
from looper_engine.store.writer import StoreWriter

SPEC = """
name = "bench"
model = "scripted:oracle"
chunk_size = {n}
[stream]
tasks = {tasks}
[limits]
max_steps = 8
[[arms]]
name = "base"
"""


async def baseline(tasks: list, db: Path) -> float:
    store = await Store.open(db)
    bus = EventBus()
    writer = StoreWriter(store, bus).start()
    t0 = time.perf_counter()
    await Runner(tasks, create_backend("scripted:oracle"), AgentConfig(max_steps=8), bus).run()
    await writer.close()
    elapsed = time.perf_counter() - t0
    await store.close()
    return elapsed


async def experiment(spec_text: str, db: Path, adapters: Path) -> tuple[float, int]:
    plan = plan_experiment(parse_experiment(spec_text, "bench.toml"), "bench.toml")
    t0 = time.perf_counter()
    outcome = await ExperimentRunner(plan, db, adapters_dir=adapters).run()
    return time.perf_counter() - t0, outcome.ran + outcome.reused + outcome.recorded


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=8)
    args = ap.parse_args()
    from looper_engine.tasks.suites import load_suite

    tasks = load_suite("koans")[: args.tasks]
    spec_text = SPEC.format(n=len(tasks), tasks="[" + ", ".join(f'"{t.id}"' for t in tasks) + "]")
    base_s: list[float] = []
    exp_s: list[float] = []
    resume_ms: list[float] = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            base_s.append(asyncio.run(baseline(tasks, tmp / "base.db")) / len(tasks))
            seconds, _ = asyncio.run(experiment(spec_text, tmp / "exp.db", tmp / "adapters"))
            exp_s.append(seconds / len(tasks))
            seconds, cells = asyncio.run(experiment(spec_text, tmp / "exp.db", tmp / "adapters"))
            resume_ms.append(1000 * seconds / cells)
    b, e = statistics.median(base_s), statistics.median(exp_s)
    print(f"{len(tasks)} koans, scripted:oracle, {args.runs} runs (medians)")
    print(f"  run s/episode     baseline {b:.3f}   experiment {e:.3f}")
    print(f"  overhead          {e / b:.2f}x")
    print(f"  resume ms/cell    {statistics.median(resume_ms):.2f}")


if __name__ == "__main__":
    main()
