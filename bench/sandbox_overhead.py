"""What a bash step costs: a bare `bash -c` subprocess, Looper's bash step unsandboxed and
sandboxed (one bwrap sandbox per episode), per step at N = 50, 200 and 800 steps of `echo hi`;
and, apart, the fixed cost of an episode (workspace, sandbox start, scoring, teardown).

Targets: the sandboxed step within 2 ms of the bare subprocess at every N; the fixed cost per
episode under 0.3 s.

    .venv/bin/python bench/sandbox_overhead.py [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from looper_engine.config import ToolSettings
from looper_engine.protocol.calls import BashCall
from looper_engine.sandbox import Sandbox, SandboxSettings, open_sandbox
from looper_engine.tasks.scoring import score_workspace
from looper_engine.tasks.suites import get_task
from looper_engine.tools.runner import execute
from looper_engine.tools.workspace import Workspace

STEPS = (50, 200, 800)
TASK = "off_by_one/date_range"


def bare(n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        subprocess.run(["bash", "-c", "echo hi"], capture_output=True, check=True)
    return (time.perf_counter() - started) / n


async def looper_steps(n: int, mode: str, parent: Path) -> float:
    task = get_task(TASK)
    ws = await Workspace.create(task.source_dir, parent)
    settings = ToolSettings()
    call = BashCall(command="echo hi")
    box: Sandbox = open_sandbox(ws.root, SandboxSettings(mode=mode))  # type: ignore[arg-type]
    try:
        await box.start()
        started = time.perf_counter()
        for _ in range(n):
            outcome = await execute(call, ws, settings, box)
            assert outcome.ok, outcome.output
        return (time.perf_counter() - started) / n
    finally:
        await box.close()
        ws.cleanup()


async def fixed_cost(mode: str, parent: Path) -> dict[str, float]:
    """One episode's costs outside its steps, each timed apart."""
    task = get_task(TASK)
    t0 = time.perf_counter()
    ws = await Workspace.create(task.source_dir, parent)
    t1 = time.perf_counter()
    box = open_sandbox(ws.root, SandboxSettings(mode=mode))  # type: ignore[arg-type]
    await box.start()
    t2 = time.perf_counter()
    await score_workspace(task, ws.root, 60, sandbox=box)
    t3 = time.perf_counter()
    await box.close()
    ws.cleanup()
    t4 = time.perf_counter()
    return {"workspace": t1 - t0, "sandbox start": t2 - t1, "scoring": t3 - t2, "teardown": t4 - t3, "total": t4 - t0}


async def main(reps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        parent = Path(tmp)
        open_sandbox(parent, SandboxSettings(mode="bwrap"))  # probe once, as `looper run` does
        print(f"per step, ms (median of {reps} runs)")
        print(f"{'N':>5} {'bare bash -c':>13} {'unsandboxed':>12} {'sandboxed':>10} {'sandboxed-bare':>15}")
        for n in STEPS:
            b = statistics.median(bare(n) for _ in range(reps))
            u = statistics.median([await looper_steps(n, "none", parent) for _ in range(reps)])
            s = statistics.median([await looper_steps(n, "bwrap", parent) for _ in range(reps)])
            flag = "ok" if s - b <= 0.002 else "OVER"
            print(f"{n:>5} {b * 1e3:>13.2f} {u * 1e3:>12.2f} {s * 1e3:>10.2f} {(s - b) * 1e3:>+12.2f} {flag}")
        print("\nfixed cost per episode, s (median of 5)")
        totals: dict[str, dict[str, float]] = {}
        for mode in ("none", "bwrap"):
            runs = [await fixed_cost(mode, parent) for _ in range(5)]
            parts = totals[mode] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            flag = "ok" if parts["total"] < 0.3 else "OVER"
            print(f"  {mode:>6}: " + "  ".join(f"{k} {v:.3f}" for k, v in parts.items()) + f"  {flag}")
        b = totals["bwrap"]
        print(
            f"  without the task's own test run (pytest): {b['total'] - b['scoring']:.3f} s; "
            "in an episode the sandbox start overlaps the model's first turn"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    asyncio.run(main(parser.parse_args().reps))
