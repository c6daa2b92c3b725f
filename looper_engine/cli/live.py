"""The headless run: a live rich view of the episodes in flight, then a summary table."""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from looper_engine.agent.runner import Runner, RunResult
from looper_engine.cli.tables import print_table
from looper_engine.config import AgentConfig
from looper_engine.episode_view import EpisodeFold
from looper_engine.events import (
    EpisodeFinished,
    EpisodeStarted,
    EventBase,
    EventBus,
    LoopAlarm,
)
from looper_engine.models.base import Backend
from looper_engine.store.db import Store
from looper_engine.store.writer import StoreWriter
from looper_engine.tasks.model import Task

STATUS_STYLE = {
    "resolved": "bold green",
    "failed": "red",
    "cancelled": "yellow",
    "errored": "bold red",
    "interrupted": "yellow",
    "running": "cyan",
}


class LiveState:
    """The episodes in flight, folded from the bus, and the progress of the whole run."""

    def __init__(self, total: int) -> None:
        self.folds: dict[str, EpisodeFold] = {}
        self.alarms: list[str] = []
        self.progress = Progress(
            TextColumn("[bold]episodes"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[resolved]} resolved"),
        )
        self.bar = self.progress.add_task("episodes", total=total, resolved=0)
        self.resolved = 0

    def apply(self, ev: EventBase) -> None:
        episode_id = ev.episode_id or ""
        if isinstance(ev, EpisodeStarted):
            # Only the last step is shown: older steps keep no text.
            self.folds[episode_id] = EpisodeFold(episode_id, keep_text_steps=1, max_output_chars=0)
        fold = self.folds.get(episode_id)
        if fold is not None:
            fold.apply(ev)
        if isinstance(ev, LoopAlarm):
            task = fold.view().task_id if fold is not None else "?"
            self.alarms.append(f"loop alarm in {task} at step {ev.step}: {ev.detail}")
        elif isinstance(ev, EpisodeFinished):
            self.folds.pop(episode_id, None)
            self.resolved += int(ev.resolved)
            self.progress.update(self.bar, advance=1, resolved=self.resolved)

    def render(self) -> Group:
        table = Table(expand=True, box=None, header_style="bold")
        table.add_column("running task")
        table.add_column("step", justify="right")
        table.add_column("last call")
        for fold in self.folds.values():
            view = fold.view()
            last = next((s for s in reversed(view.steps) if s.tool is not None), None)
            table.add_row(view.task_id, str(last.step if last else 0), last.last_call if last else "")
        alarms = Text("\n".join(self.alarms[-3:]), style="bold yellow") if self.alarms else Text("")
        return Group(self.progress, table, alarms)


def summary_table(result: RunResult, backend: Backend) -> Table:
    table = Table(title=f"run {result.run_id}: {backend.label or backend.spec}", header_style="bold")
    for col, justify in (
        ("task", "left"),
        ("status", "left"),
        ("steps", "right"),
        ("tokens", "right"),
        ("alarms", "right"),
        ("time", "right"),
        ("episode", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for e in result.episodes:
        table.add_row(
            e.task_id,
            Text(e.status, style=STATUS_STYLE.get(e.status, "")),
            str(e.steps),
            str(e.prompt_tokens + e.completion_tokens),
            str(e.loop_alarms) if e.loop_alarms else "",
            f"{e.duration_s:.1f}s",
            e.episode_id,
        )
    return table


async def run_headless(
    tasks: list[Task], backend: Backend, config: AgentConfig, args: argparse.Namespace, db_path: Path
) -> int:
    console = Console()
    store = await Store.open(db_path)
    bus = EventBus()
    writer = StoreWriter(store, bus).start()
    try:
        await backend.check()
        runner = Runner(
            tasks,
            backend,
            config,
            bus,
            suite=args.suite,
            concurrency=args.concurrency,
            name=getattr(args, "name", ""),
        )
        if backend.scripted:
            console.print(
                f"[yellow]model: {backend.label} — a scripted policy, a demo and test driver, not a result[/]"
            )
        console.print(f"run {runner.run_id}: {len(tasks)} tasks, concurrency {runner.concurrency}, db {db_path}")
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, runner.cancel)
        except (NotImplementedError, RuntimeError):
            pass
        state = LiveState(len(tasks))
        sub = bus.subscribe(
            kinds=("episode_started", "call_parsed", "parse_problem", "tool_result", "loop_alarm", "episode_finished"),
            max_pending=10_000,
        )
        run_task = asyncio.create_task(runner.run())
        quiet = getattr(args, "quiet", False) or not console.is_terminal
        started = time.monotonic()
        if quiet:
            while not run_task.done():
                await asyncio.wait([run_task], timeout=0.2)
                for ev in sub.drain():
                    state.apply(ev)
                    if isinstance(ev, LoopAlarm):
                        console.print(f"[yellow]{state.alarms[-1]}[/]")
        else:
            with Live(state.render(), console=console, refresh_per_second=10, transient=True) as live:
                while not run_task.done():
                    await asyncio.wait([run_task], timeout=0.1)
                    for ev in sub.drain():
                        state.apply(ev)
                    live.update(state.render())
        sub.close()
        result = run_task.result()
        try:
            loop.remove_signal_handler(signal.SIGINT)
        except (NotImplementedError, RuntimeError):
            pass
    finally:
        await writer.close()
        await store.close()
        await backend.aclose()
    print_table(console, summary_table(result, backend))
    # Imported here: the statistics pull in numpy, which the run itself never needs.
    from looper_engine.evaluation.stats import wilson_interval

    k, n = result.resolved, len(result.episodes)
    lo, hi = wilson_interval(k, n)
    console.print(
        f"resolved {k}/{n} ({(k / n if n else 0):.0%}, 95% CI {lo:.0%}-{hi:.0%}) in "
        f"{time.monotonic() - started:.1f}s; every step recorded in {db_path}"
    )
    if backend.scripted:
        console.print("[yellow]scripted policy: these numbers show the framework works, not a model's skill[/]")
    return 0 if result.status == "finished" else 130
