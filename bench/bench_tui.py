"""The TUI under load, against baselines measured in the same process.

1. Live ingest: an unthrottled backend streams long turns into the live view. Figures:
   tokens per second the engine gets through with the app drawing them, against the
   engine alone (no app, one subscriber draining the bus); and the latency of `?` (help) and
   `t` (training) pressed meanwhile, from the press to the screen mounted (target: under
   100 ms at the maximum).
2. History: a 10,000-step episode written straight into a store, opened in the history
   view. Figures: time until the first step is on screen, and resident memory before and
   after, against reading the whole episode into a Trajectory (what a naive view would do).

Run: .venv/bin/python bench/bench_tui.py   (medians of a few repeats; numbers vary with
the machine and its load, the ratios much less)."""

from __future__ import annotations

import asyncio
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from textual import events

from looper_engine.agent.runner import Runner
from looper_engine.chat import Message
from looper_engine.config import AgentConfig
from looper_engine.events import (
    BudgetUpdate,
    CallParsed,
    ContextBuilt,
    EpisodeFinished,
    EpisodeStarted,
    EventBus,
    ModelOutput,
    Observation,
    ToolResult,
)
from looper_engine.models.base import Backend, GenOptions, ModelStream
from looper_engine.store.db import Store
from looper_engine.store.replay import trajectory_from_events
from looper_engine.store.writer import StoreWriter
from looper_engine.tasks.model import Task
from looper_tui.app import LooperApp
from looper_tui.lab import RunRequest
from looper_tui.screens.help import HelpScreen
from looper_tui.screens.history import HistoryScreen
from looper_tui.screens.train import TrainScreen

#: The keys pressed while the model streams (in turn), and the screens they open.
KEYS: list[tuple[str, str, type]] = [("question_mark", "?", HelpScreen), ("t", "t", TrainScreen)]

TURN_TOKENS = 3000
STEPS = 36
REPEATS = 3
LONG_STEPS = 10_000

WORDS = "the loop reads the file then edits the line and runs the tests again".split()


class Firehose(Backend):
    """Long prose turns, as fast as the loop can take them (a stand-in for a fast local
    server). No tool tag, so each step costs the agent a parse note and no subprocess."""

    spec = "bench:firehose"
    label = "bench firehose (no model)"

    def stream(self, messages: list[Message], options: GenOptions) -> ModelStream:
        return _Stream()


class _Stream(ModelStream):
    async def _deltas(self) -> AsyncIterator[str]:
        for i in range(TURN_TOKENS):
            yield WORDS[i % len(WORDS)] + (" " if i % 20 else "\n")
            if i % 16 == 0:
                await asyncio.sleep(0)  # a network client yields per chunk


def tiny_task(root: Path) -> Task:
    source = root / "task"
    source.mkdir(parents=True, exist_ok=True)
    (source / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    return Task(id="bench/add", suite="bench", family="bench", statement="add is wrong",
                source_dir=source, test_command=["{python}", "-c", "pass"])


def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# --- 1. live ingest -------------------------------------------------------------------


async def engine_alone(root: Path) -> float:
    bus = EventBus()
    sub = bus.subscribe(max_pending=5000)

    async def drain() -> None:
        while await sub.get_batch():
            await asyncio.sleep(1 / 30)

    drainer = asyncio.create_task(drain())
    runner = Runner([tiny_task(root)], Firehose(), AgentConfig(max_steps=STEPS), bus, workspace_parent=root)
    t0 = time.perf_counter()
    await runner.run()
    dt = time.perf_counter() - t0
    sub.close()
    await drainer
    return STEPS * TURN_TOKENS / dt


async def with_app(root: Path) -> tuple[float, dict[str, list[float]]]:
    root.mkdir(parents=True, exist_ok=True)
    app = LooperApp(root / "live.db", config_folder=root / "cfg", blink=False, workspace_parent=root)
    latencies: dict[str, list[float]] = {char: [] for _, char, _ in KEYS}
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        t0 = time.perf_counter()
        runner = app.start_run(RunRequest(model="scripted:oracle", max_steps=STEPS, concurrency=1),
                               tasks=[tiny_task(root)], backend=Firehose())
        assert runner is not None
        episode_id = runner.episodes[0].id
        presses = 0
        while app.lab.state.episode(episode_id).finished is None:
            await asyncio.sleep(0.15)
            if app.lab.state.episode(episode_id).finished is not None:
                break
            key, char, screen = KEYS[presses % len(KEYS)]
            presses += 1
            # The key arrives as the terminal driver would post it (Pilot.press would also
            # wait for the app to go idle, which it never does while a model streams).
            pressed = time.perf_counter()
            app.post_message(events.Key(key, char))
            # Handled once the screen it opens is mounted (a key sent before that would reach
            # the screen below).
            while not (isinstance(app.screen, screen) and app.screen.is_mounted):
                await asyncio.sleep(0)
            latencies[char].append(time.perf_counter() - pressed)
            app.post_message(events.Key("escape", None))
            while isinstance(app.screen, screen):
                await asyncio.sleep(0)
        dt = time.perf_counter() - t0
    return STEPS * TURN_TOKENS / dt, latencies


# --- 2. a 10,000-step episode ---------------------------------------------------------


async def record_long(db: Path, steps: int) -> str:
    store = await Store.open(db)
    bus = EventBus()
    writer = StoreWriter(store, bus, linger_s=0).start()
    ep = "ep-long"
    common = {"episode_id": ep, "run_id": None}
    bus.publish(EpisodeStarted(**common, task_id="bench/add", suite="bench", model="bench:firehose",
                               model_label="bench", system_prompt="You fix bugs.", task_prompt="add is wrong",
                               max_steps=steps, token_budget=8192))
    for n in range(1, steps + 1):
        bus.publish(ContextBuilt(**common, step=n, n_messages=2 * n, context_tokens=2000, budget=8192))
        bus.publish(ModelOutput(**common, step=n, text=f"Check again.\n<bash>echo {n}</bash>",
                                completion_tokens=12, duration_s=0.1))
        bus.publish(CallParsed(**common, step=n, tool="bash", target=f"echo {n}",
                               call={"tool": "bash", "command": f"echo {n}"}))
        bus.publish(ToolResult(**common, step=n, tool="bash", target=f"echo {n}", ok=True, exit_code=0,
                               output=f"{n}\n", duration_s=0.01))
        bus.publish(Observation(**common, step=n, text=f"{n}\n(exit code 0)"))
        bus.publish(BudgetUpdate(**common, step=n, context_tokens=2000, budget=8192))
        if n % 1000 == 0:
            await writer.flush()
    bus.publish(EpisodeFinished(**common, status="failed", resolved=False, reason="step limit", steps=steps))
    await writer.close()
    await store.close()
    return ep


async def open_history(db: Path, root: Path, ep: str) -> tuple[float, float, float]:
    app = LooperApp(db, config_folder=root / "cfg", blink=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        before = rss_mb()
        t0 = time.perf_counter()
        app.push_screen(HistoryScreen(ep))
        while not (isinstance(app.screen, HistoryScreen) and app.screen.record is not None):
            await asyncio.sleep(0.001)
        opened = time.perf_counter() - t0
        await pilot.pause(0.1)
        after = rss_mb()
    return opened, before, after


async def naive_history(db: Path, ep: str) -> tuple[float, float, float]:
    store = await Store.open(db, create=False)
    before = rss_mb()
    t0 = time.perf_counter()
    traj = trajectory_from_events(await store.events(ep))
    dt = time.perf_counter() - t0
    after = rss_mb()
    assert len(traj.steps) == LONG_STEPS
    await store.close()
    del traj
    return dt, before, after


def say(text: str) -> None:
    # The app swaps sys.stdout while it runs; write to the real one.
    sys.__stdout__.write(text + "\n")
    sys.__stdout__.flush()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        say(f"== live ingest: {STEPS} steps x {TURN_TOKENS} tokens, unthrottled, medians of {REPEATS}")
        alone = [await engine_alone(root / f"a{i}") for i in range(REPEATS)]
        runs = [await with_app(root / f"b{i}") for i in range(REPEATS)]
        with_ui = [r[0] for r in runs]
        say(f"engine alone (baseline)      {median(alone):>10,.0f} tokens/s")
        say(f"engine + live view           {median(with_ui):>10,.0f} tokens/s "
              f"({median(with_ui) / median(alone):.0%} of baseline)")
        for _, char, screen in KEYS:
            lat = [x for r in runs for x in r[1][char]]
            say(f"key {char} -> {screen.__name__:<12} median {median(lat) * 1000:.1f} ms, "
                  f"max {max(lat, default=float('nan')) * 1000:.1f} ms over {len(lat)} presses (target < 100 ms)")

        say(f"\n== history: one episode of {LONG_STEPS:,} steps")
        db = root / "long.db"
        t0 = time.perf_counter()
        ep = await record_long(db, LONG_STEPS)
        say(f"written through the StoreWriter in {time.perf_counter() - t0:.1f}s")
        naive = [await naive_history(db, ep) for _ in range(REPEATS)]
        opened = [await open_history(db, root, ep) for _ in range(REPEATS)]
        say(f"whole trajectory read (baseline)  {median([n[0] for n in naive]) * 1000:>8.0f} ms, "
              f"RSS {naive[0][1]:.0f} -> {naive[0][2]:.0f} MB")
        say(f"history view, first step shown    {median([o[0] for o in opened]) * 1000:>8.0f} ms, "
              f"RSS {median([o[1] for o in opened]):.0f} -> {median([o[2] for o in opened]):.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
