"""`looper experiment run FILE`, `looper experiment list`, `looper experiment power FILE`,
`looper report EXP`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any

from looper_engine.errors import UserError
from looper_engine.store.db import DEFAULT_DB

DEFAULT_ADAPTERS = Path("adapters")


def _db(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "db_sub", None) or getattr(args, "db", None) or DEFAULT_DB)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="day/night experiments: run one from a file, list them")
    esub = p.add_subparsers(dest="experiment_command", metavar="COMMAND", required=True,
                            parser_class=type(p))
    r = esub.add_parser("run", help="run an experiment file (or continue it where it stopped)")
    r.add_argument("file", help="the experiment's TOML file")
    r.add_argument("--db", dest="db_sub", default=None, help="SQLite database (default ./looper.db)")
    r.add_argument("--adapters", default=str(DEFAULT_ADAPTERS), help="where adapters go (default adapters/)")
    r.add_argument("--quiet", action="store_true", help="no live view: a line per night and the summary")
    r.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run the episodes on a Ray cluster: auto, local (a local Ray with this machine's CPUs), "
                        "ray://HOST:PORT or HOST:PORT; the store is written only here")
    r.set_defaults(func=cmd_experiment_run)
    ls = esub.add_parser("list", help="list the experiments in the database")
    ls.add_argument("--db", dest="db_sub", default=None)
    ls.set_defaults(func=cmd_experiment_list)
    pw = esub.add_parser(
        "power",
        help="simulate an experiment file's design: false-positive rate, smallest detectable effect, power",
    )
    pw.add_argument("file", help="the experiment's TOML file (no model is loaded)")
    pw.add_argument("--effect", type=float, default=None, metavar="D",
                    help="also the power to detect a difference D in success rate (e.g. 0.2)")
    pw.set_defaults(func=cmd_experiment_power)

    rp = sub.add_parser("report", help="write an experiment's report (Markdown + PNG plots, or JSON)")
    rp.add_argument("exp", nargs="?", default="", help="experiment name, or its TOML file (default: the newest)")
    rp.add_argument("--db", dest="db_sub", default=None)
    rp.add_argument("--out", default=None, help="output folder (default reports/EXP)")
    rp.add_argument("--format", dest="fmt", choices=("markdown", "json"), default="markdown",
                    help="markdown: DIR/report.md with plots; json: the same figures on stdout")
    rp.set_defaults(func=cmd_report)


# --- run ---------------------------------------------------------------------------------------


class _View:
    """The live view: a progress bar over the experiment's units, the current phase, and the
    last night's verdict. Without a terminal (or with --quiet) it prints a line per night."""

    def __init__(self, console: Any, live: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console
        self.live = live
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            transient=False,
            disable=not live,
        )
        self.bar = self.progress.add_task("experiment", total=None, status="")
        self.ran = self.reused = self.recorded = 0

    def __call__(self, p: Any) -> None:
        if p.kind == "cell":
            if p.how == "ran":
                self.ran += 1
            elif p.how == "reused":
                self.reused += 1
            else:
                self.recorded += 1
            mark = "✓" if p.resolved else "✗"
            where = "zero-shot" if p.arm == "zero-shot" else f"{p.arm} s{p.seed} c{p.cycle + 1} {p.phase}"
            self.progress.update(
                self.bar, total=p.total, completed=p.done,
                status=f"{where}: {p.task_id} {mark} ({p.how})",
            )
        elif p.kind == "train":
            loss = f" loss {p.train_loss:.3f}" if p.train_loss is not None else ""
            self.progress.update(
                self.bar, status=f"{p.arm} s{p.seed} night {p.cycle + 1}: training {p.iteration}/{p.iterations}{loss}"
            )
        elif p.kind == "night":
            line = f"{p.arm} seed {p.seed} night {p.cycle + 1}: {p.message}"
            if self.live:
                self.progress.console.print(line)
            else:
                self.console.print(line)
        elif p.kind == "plan":
            self.progress.update(self.bar, total=p.total, description=f"experiment {p.exp_id}")


def cmd_experiment_run(args: argparse.Namespace) -> int:
    from looper_engine.evaluation.experiment import load_experiment, plan_experiment

    spec = load_experiment(args.file)
    plan = plan_experiment(spec, args.file)
    db = _db(args)
    if db.is_dir():
        raise UserError(f"{db} is a folder, not a Looper database")
    if not db.parent.exists():
        raise UserError(f"cannot create database {db}: folder {db.parent} does not exist")
    address = getattr(args, "ray", None)
    if address is None:
        return asyncio.run(_run(plan, db, Path(args.adapters), quiet=args.quiet))
    from looper_engine.evaluation import distributed

    # Connect before anything runs: a missing package or an unreachable cluster is one line.
    owner = distributed.connect(address)
    try:
        return asyncio.run(_run(plan, db, Path(args.adapters), quiet=args.quiet, ray=address))
    finally:
        if owner:
            distributed.shutdown()


async def _run(plan: Any, db: Path, adapters: Path, *, quiet: bool, ray: str | None = None) -> int:
    from rich.console import Console

    from looper_engine.evaluation.cycle import BackendPool, ExperimentRunner
    from looper_engine.evaluation.experiment import preflight

    console = Console()
    backends = BackendPool(adapters)
    try:
        await preflight(plan.spec, plan.path, backends)
        view = _View(console, live=not quiet and console.is_terminal)
        runner = ExperimentRunner(plan, db, adapters_dir=adapters, backends=backends, on_progress=view, ray=ray)
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, runner.cancel)
        except (NotImplementedError, RuntimeError):
            pass
        n_tasks = sum(len(c) for c in plan.chunks)
        console.print(
            f"experiment {plan.exp_id}: {n_tasks} tasks in {plan.n_chunks} chunks, {len(plan.heldout)} held out, "
            f"{len(plan.spec.arms)} arms, seeds {', '.join(map(str, plan.spec.seeds))}; db {db}"
        )
        started = time.monotonic()
        with view.progress:
            outcome = await runner.run()
        try:
            loop.remove_signal_handler(signal.SIGINT)
        except (NotImplementedError, RuntimeError):
            pass
    finally:
        await backends.aclose()
    console.print(
        f"{outcome.status}: {outcome.ran} episodes run, {outcome.reused} cells reused, "
        f"{outcome.recorded} already recorded, {outcome.trained} adapters trained "
        f"in {time.monotonic() - started:.1f}s"
    )
    if outcome.status == "cancelled":
        console.print(f"run `looper experiment run {plan.path}` again to continue where it stopped")
        return 130
    await _print_summary(console, db, plan.exp_id)
    console.print(f"full report: looper report {plan.exp_id} --db {db}")
    return 0


async def _print_summary(console: Any, db: Path, exp_id: str) -> None:
    from rich.table import Table

    from looper_engine.cli.tables import print_table
    from looper_engine.evaluation.results import CL_METRICS, NO_INTERVAL, fmt_rate, load_results
    from looper_engine.store.db import Store

    store = await Store.open(db, create=False)
    try:
        results = await load_results(store, exp_id)
    finally:
        await store.close()
    if results.scripted:
        console.print("[yellow]scripted policies take part: these numbers show the machinery works, not a model's skill[/]")
    table = Table(title=f"experiment {exp_id}", header_style="bold")
    table.add_column("arm")
    table.add_column("final resolve rate")
    shown = [m for m in CL_METRICS if m[0] in ("acc", "forgetting", "forward_transfer")]
    for _, label in shown:
        table.add_column(label, justify="right", no_wrap=True)
    table.add_column("vs base, stream (p)", justify="right", no_wrap=True)
    for a in results.arms:
        rate = fmt_rate(a.episodes.resolve_rate) if a.episodes else "—"
        stream = next((c for c in a.vs_base if c.scope == "stream"), None)
        vs = "—" if stream is None else f"{stream.diff:+.0%} (p {stream.p_value:.3g})"
        table.add_row(a.arm, rate, *(str(a.summary[k]) if a.summary else "—" for k, _ in shown), vs)
    print_table(console, table)
    if any(v.note.startswith(NO_INTERVAL) for a in results.arms for v in a.summary.values()):
        console.print(f"† {NO_INTERVAL}")


# --- list ----------------------------------------------------------------------------------------


def cmd_experiment_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from looper_engine.cli.tables import print_table
    from looper_engine.store.db import Store
    from looper_engine.store.experiments import experiment_counts, list_experiments

    async def go() -> list[tuple[Any, dict[str, int]]]:
        store = await Store.open(_db(args), create=False)
        try:
            return [(e, await experiment_counts(store, e.id)) for e in await list_experiments(store)]
        finally:
            await store.close()

    rows = asyncio.run(go())
    if not rows:
        print(f"no experiments in {_db(args)}")
        return 0
    table = Table(header_style="bold")
    for col in ("experiment", "status", "arms", "seeds", "cells", "episodes", "nights", "started"):
        table.add_column(col)
    for exp, counts in rows:
        table.add_row(
            exp.id,
            exp.status,
            ", ".join(a["name"] for a in exp.spec.get("arms", [])),
            ", ".join(map(str, exp.spec.get("seeds", []))),
            str(counts["cells"]),
            str(counts["episodes"]),
            str(counts["nights"]),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(exp.created_at)),
        )
    print_table(Console(), table)
    return 0


# --- power ---------------------------------------------------------------------------------------


def cmd_experiment_power(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from looper_engine.evaluation.experiment import load_experiment, plan_experiment
    from looper_engine.evaluation.power import comparison_designs, design_power, power_lines

    spec = load_experiment(args.file)
    plan = plan_experiment(spec, args.file)
    designs = comparison_designs(spec, sum(len(c) for c in plan.chunks), len(plan.heldout))
    result = design_power(designs, effect=args.effect)
    console = Console()
    table = Table(
        title=f"{plan.exp_id}: {sum(len(c) for c in plan.chunks)} stream tasks in {plan.n_chunks} chunks, "
        f"{len(plan.heldout)} held out, seeds {', '.join(map(str, spec.seeds))}",
        header_style="bold",
    )
    table.add_column("arm", no_wrap=True)
    table.add_column("tasks", no_wrap=True)
    table.add_column("n", no_wrap=True)
    table.add_column("FP rate", justify="right")
    table.add_column(f"detects ({result.power:.0%} power)", justify="right")
    table.caption = (
        f"FP rate: how often p < {result.alpha} when nothing differs; detects: the smallest increase in "
        f"success rate found with {result.power:.0%} power"
    )
    if result.effect is not None:
        table.add_column(f"power at {result.effect:+.2f}", justify="right")
    for c in result.comparisons:
        row = [c.arm, c.scope, c.design, f"{c.false_positive_rate:.3f}",
               "none" if c.min_detectable is None else f"{c.min_detectable:.2f}"]
        if result.effect is not None:
            row.append("—" if c.power_at_effect is None else f"{c.power_at_effect:.0%}")
        table.add_row(*row)
    console.print(table)
    for line in power_lines(result):
        console.print(line, soft_wrap=True)
    short = result.cannot_detect()
    if short:
        best = max(short, key=lambda c: c.power_at_effect or 0.0)
        console.print(
            f"[bold red]this design cannot detect a difference of {result.effect:+.2f} with {result.power:.0%} "
            f"power[/] in {len(short)} of its {len(result.comparisons)} comparisons (best: {best.arm} on the "
            f"{best.scope}, {best.design}, power {best.power_at_effect or 0.0:.0%})",
            soft_wrap=True,
        )
    console.print(
        f"[dim]{result.sims} simulated experiments per comparison; task success probabilities ~ "
        f"Beta{result.task_prior}; the exact sign-flip test on per-task differences, two-sided[/]",
        soft_wrap=True,
    )
    return 0


# --- report --------------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    from looper_engine.evaluation.report import write_report
    from looper_engine.evaluation.results import load_results
    from looper_engine.store.db import Store

    name = args.exp
    if name.endswith(".toml") or Path(name).is_file():
        from looper_engine.evaluation.experiment import load_experiment

        name = load_experiment(name).name

    async def go() -> Any:
        store = await Store.open(_db(args), create=False)
        try:
            return await load_results(store, name)
        finally:
            await store.close()

    results = asyncio.run(go())
    if getattr(args, "fmt", "markdown") == "json":
        from looper_engine.evaluation.report import report_json

        print(report_json(results), file=sys.stdout)
        return 0
    out = Path(args.out) if args.out else Path("reports") / results.exp_id
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    path = write_report(results, out)
    print(f"report for {results.exp_id} ({results.status}): {path}", file=sys.stdout)
    return 0
