"""Score a mini-lab model the way every task is scored: episodes through the real engine.

New instances (a world seed the model never trained on, and no buggy file it trained on)
of every family run through the ordinary agent loop with `mlx:PATH` and the compact prompt
profile; the task's tests decide. Reported per family with Wilson 95% intervals, in three
groups: the base families' training templates, their held-out templates (a surface never
seen in training) and the stream families (never trained on: the floor).
"""

from __future__ import annotations

import asyncio
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from looper_engine.errors import UserError
from looper_engine.evaluation.stats import wilson_interval
from looper_engine.tasks.world.curriculum import BASE_FAMILIES, STREAM_FAMILIES

GROUPS = ("base", "base held-out templates", "stream (not trained)")
#: At most this many times the instances asked for are drawn to find new ones.
MAX_DRAW = 16


class FamilyScore(BaseModel):
    family: str
    group: str
    resolved: int
    n: int
    lo: float
    hi: float

    @property
    def rate(self) -> float:
        return self.resolved / self.n if self.n else 0.0


class EvalReport(BaseModel):
    model: str
    seed: int
    scores: list[FamilyScore] = Field(default_factory=list)
    seconds: float = 0.0
    db: str = ""

    def group(self, name: str) -> list[FamilyScore]:
        return [s for s in self.scores if s.group == name]

    def mean(self, name: str) -> float | None:
        rows = self.group(name)
        return sum(s.rate for s in rows) / len(rows) if rows else None


def _training_tasks(path: Path) -> tuple[list[Any], list[str]]:
    """The tasks the model at `path` trained on (from its recipe) and its base families."""
    from looper_engine.consolidation.pretrain import PretrainRecipe, read_recipe, training_tasks

    data = read_recipe(path)
    if data is None:
        return [], list(BASE_FAMILIES)
    recipe = PretrainRecipe.model_validate(data["recipe"])
    return training_tasks(recipe), list(recipe.families)


def evaluation_tasks(path: Path, n_base: int, n_other: int, seed: int) -> list[tuple[str, str, list[Any]]]:
    """(family, group, tasks) for every family: `n_base` new instances per base family,
    `n_other` per held-out set and stream family, none with a buggy file seen in training."""
    from looper_engine.tasks import world

    seen, base = _training_tasks(path)
    out: list[tuple[str, str, list[Any]]] = []

    def fresh(family: str, split: str, n: int) -> list[Any]:
        shapes = world.train_templates(family) if split == "train" else world.heldout_templates(family)
        if n <= 0 or not shapes:
            return []
        # Instances that repeat a training file are dropped, so draw more until n are new (an
        # instance does not depend on how many are drawn); ids sort by index before template,
        # so the first n take the templates in turn.
        per_template = math.ceil(n / len(shapes)) + 2
        while True:
            tasks = world.generate(seed=seed, per_template=per_template, families=[family], split=split)
            new = world.exclude_seen(tasks, seen) if seen else tasks
            if len(new) >= n or per_template >= MAX_DRAW * math.ceil(n / len(shapes)):
                return new[:n]
            per_template *= 2

    for fam in base:
        out.append((fam, GROUPS[0], fresh(fam, "train", n_base)))
    for fam in base:
        out.append((fam, GROUPS[1], fresh(fam, "heldout", n_other)))
    for fam in (f for f in STREAM_FAMILIES if f not in base):
        out.append((fam, GROUPS[2], fresh(fam, "train", n_other)))
    return out


async def score_tasks(
    path: Path, tasks: list[Any], *, db: Path | None = None, concurrency: int = 3, name: str = ""
) -> dict[str, bool]:
    """Run `mlx:PATH` on every task through the real engine (mini-lab agent settings);
    task id -> resolved. Episodes are recorded in `db` (default: a scratch file)."""
    from looper_engine.agent.runner import Runner
    from looper_engine.consolidation.pretrain import minilab_agent_config
    from looper_engine.events import EventBus
    from looper_engine.models.registry import create_backend
    from looper_engine.store.db import Store
    from looper_engine.store.writer import StoreWriter

    scratch = None
    if db is None:
        scratch = Path(tempfile.mkdtemp(prefix="looper-minilab-eval-"))
        db = scratch / "eval.db"
    store = await Store.open(db)
    bus = EventBus()
    writer = StoreWriter(store, bus).start()
    backend = create_backend(f"mlx:{path}")
    try:
        await backend.check()
        result = await Runner(
            tasks, backend, minilab_agent_config(), bus, suite="world", concurrency=concurrency, name=name
        ).run()
    finally:
        await writer.close()
        await store.close()
        await backend.aclose()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return {e.task_id: e.resolved for e in result.episodes}


async def evaluate_model(
    path: Path,
    *,
    n_base: int = 100,
    n_other: int = 30,
    seed: int = 9000,
    db: Path | None = None,
    concurrency: int = 3,
    on_line: Callable[[str], None] | None = None,
) -> EvalReport:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise UserError(f"{path} is not an MLX model folder (build it with `looper model pretrain {path}`)")
    t0 = time.monotonic()
    groups = await asyncio.to_thread(evaluation_tasks, path, n_base, n_other, seed)
    tasks = [t for _, _, ts in groups for t in ts]
    if on_line is not None:
        on_line(f"{len(tasks)} new instances in {len(groups)} sets, world seed {seed}")
    resolved = await score_tasks(path, tasks, db=db, concurrency=concurrency, name=f"minilab eval seed {seed}")
    report = EvalReport(model=f"mlx:{path}", seed=seed, db=str(db) if db is not None else "")
    for fam, group, ts in groups:
        if not ts:
            continue
        k = sum(resolved.get(t.id, False) for t in ts)
        lo, hi = wilson_interval(k, len(ts))
        report.scores.append(FamilyScore(family=fam, group=group, resolved=k, n=len(ts), lo=lo, hi=hi))
    report.seconds = time.monotonic() - t0
    return report


def results_table(report: EvalReport) -> Any:
    from rich.table import Table

    table = Table(title=f"{report.model} on new world instances (seed {report.seed})", title_justify="left")
    table.add_column("set")
    table.add_column("family", style="bold")
    table.add_column("resolved", justify="right")
    table.add_column("rate", justify="right")
    table.add_column("95% interval", justify="right")
    for group in GROUPS:
        rows = report.group(group)
        for s in rows:
            table.add_row(group, s.family, f"{s.resolved}/{s.n}", f"{s.rate:.0%}", f"{s.lo:.0%}-{s.hi:.0%}")
        mean = report.mean(group)
        if rows and mean is not None:
            table.add_row(group, "[i]mean[/]", "", f"{mean:.0%}", "", end_section=True)
    table.caption = f"{sum(s.n for s in report.scores)} episodes in {report.seconds:.0f}s"
    return table
