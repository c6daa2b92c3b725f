"""Watch a model learn: the mini-lab's interactive loop, without any UI.

The mini-lab base model (`looper model pretrain`, default `models/minilab`) runs a *round*:
a few fresh task-world instances of every family, through the ordinary agent loop with the
compact prompt profile, recorded like any run. It solves the families it was pretrained on
and fails the others. *Teaching* one family runs the scripted oracle on other instances of
it, synthesizes training data from those recorded episodes, trains with mlx-lm (the
consolidation job, so the adapter lands in the registry) and returns the adapter. The next
round, on the same round tasks, runs with what was taught: before and after, task by task.

How a lesson is kept is the `teach_strategy`:

    routing  one adapter per taught family; a round task runs on its family's adapter, or on
             the base model when its family was never taught (nothing is forgotten)
    naive    one model for everything, each lesson continuing the last with a few episodes of
             every other family replayed (the taught family rises, the known ones fall)

Round tasks, teaching tasks and the world seeds the model was pretrained on never overlap:
each has its own seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from looper_engine.config import AgentConfig
from looper_engine.consolidation.strategies import DEFAULT_FAMILY, route
from looper_engine.consolidation.train import TrainConfig
from looper_engine.errors import UserError
from looper_engine.tasks.model import Task
from looper_engine.tasks.world.curriculum import BASE_FAMILIES, STREAM_FAMILIES

DEFAULT_MODEL = "mlx:models/minilab"
#: The base model's pretraining families, then the first three it has never seen.
DEFAULT_FAMILIES = (*BASE_FAMILIES, *STREAM_FAMILIES[:3])


def _default_train() -> TrainConfig:
    # Measured on the 1M base model: full fine-tuning at lr 3e-4 after 10 warmup steps learns a
    # new family in about a minute of CPU (28/40 of bool_op from 3/40, 60 steps); at 1e-3
    # without warmup it also knocked the model off the families it knew.
    return TrainConfig(
        fine_tune_type="full",
        learning_rate=3e-4,
        warmup=10,
        iters=80,
        batch_size=16,
        max_seq_length=512,
        steps_per_report=5,
        steps_per_eval=40,
        save_every=80,
    )


class MiniLabSettings(BaseModel):
    """What a mini-lab session runs. The defaults are the welcome screen's."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(DEFAULT_MODEL, description="the base model, an mlx:PATH")
    families: list[str] = Field(
        default_factory=lambda: list(DEFAULT_FAMILIES), description="world families shown; empty = all"
    )
    per_family: int = Field(3, ge=1, description="round tasks per family")
    round_seed: int = Field(9001, description="world seed of the round tasks")
    teach_seed: int = Field(9002, description="world seed of the tasks the oracle teaches on")
    teach_strategy: Literal["routing", "naive"] = Field(
        "routing", description="routing: an adapter per taught family; naive: one model for all lessons"
    )
    teach_per_family: int = Field(48, ge=1, description="oracle episodes of the family being taught")
    replay_per_family: int = Field(4, ge=0, description="naive: oracle episodes of every other family")
    max_steps: int = Field(6, ge=1)
    max_tokens_per_turn: int = Field(128, ge=16, description="a world reply is a few dozen tokens")
    concurrency: int = Field(2, ge=1)
    train: TrainConfig = Field(default_factory=_default_train)

    def model_path(self) -> Path:
        spec = self.model[4:] if self.model.startswith("mlx:") else self.model
        return Path(spec.split("@", 1)[0])


def model_problem(settings: MiniLabSettings) -> str | None:
    """None when the base model is there to run; else one line saying how to get it."""
    import importlib.util

    if importlib.util.find_spec("mlx_lm") is None:
        return "the mini-lab needs mlx-lm: pip install 'looper[mlx]'"
    path = settings.model_path()
    if not (path / "config.json").is_file():
        return f"no mini-lab model at {path}: build it with `looper model pretrain {path}`"
    return None


def agent_config(settings: MiniLabSettings) -> AgentConfig:
    """The compact profile the mini-lab model was pretrained with, greedy decoding."""
    return AgentConfig(
        prompt_profile="compact",
        max_steps=settings.max_steps,
        max_tokens_per_turn=settings.max_tokens_per_turn,
        temperature=0.0,
    )


def families(settings: MiniLabSettings) -> list[str]:
    from looper_engine.tasks import world

    known = world.families()
    for fam in settings.families:
        if fam not in known:
            raise UserError(f"unknown world family {fam!r} (known: {', '.join(known)})")
    return list(settings.families) or known


def _pick(seed: int, counts: dict[str, int]) -> list[Task]:
    """`counts[family]` training-template tasks of each family, spread over its templates."""
    from looper_engine.tasks import world

    wanted = {f: n for f, n in counts.items() if n > 0}
    if not wanted:
        return []
    per_template = max(-(-n // max(len(world.train_templates(f)), 1)) for f, n in wanted.items())
    pool = world.generate(seed=seed, per_template=per_template, families=sorted(wanted), split="train")
    out: list[Task] = []
    for fam, n in wanted.items():
        out.extend([t for t in pool if t.family == fam][:n])
    return out


def round_tasks(settings: MiniLabSettings) -> list[Task]:
    """The tasks every round runs: the same ones before and after teaching."""
    return _pick(settings.round_seed, {f: settings.per_family for f in families(settings)})


def teaching_tasks(settings: MiniLabSettings, family: str) -> list[Task]:
    """The oracle's lesson: many instances of `family`; for the naive strategy also a few of
    every other family, replayed so one model keeps some of them."""
    replay = settings.replay_per_family if settings.teach_strategy == "naive" else 0
    counts = {f: replay for f in families(settings)}
    counts[family] = settings.teach_per_family
    return _pick(settings.teach_seed, counts)


#: family -> adapter folder; the `default` family covers every family without its own.
Routes = dict[str, str]


def routes_after(settings: MiniLabSettings, routes: Routes, family: str, record: Any) -> Routes:
    """What each family runs with once `family` has been taught: `record` is the lesson's
    AdapterRecord (a routing lesson's folder holds the family's adapter in its routes)."""
    if settings.teach_strategy == "naive":
        return {DEFAULT_FAMILY: record.path}
    taught = record.metrics.get("routes", {}).get(family)
    if taught is None:
        raise UserError(f"the {family} lesson produced no adapter for {family}")
    return {**routes, family: taught}


def round_groups(settings: MiniLabSettings, tasks: list[Task], routes: Routes) -> list[tuple[str, list[Task]]]:
    """The round's tasks grouped by the model spec each runs with (base model first)."""
    groups: dict[str, list[Task]] = {}
    for task in tasks:
        adapter = route({f: Path(p) for f, p in routes.items()}, task.family)
        spec = settings.model + (f"@{adapter}" if adapter is not None else "")
        groups.setdefault(spec, []).append(task)
    return sorted(groups.items(), key=lambda kv: (kv[0] != settings.model, kv[0]))


class FamilyScore(BaseModel):
    family: str
    resolved: int = 0
    total: int = 0

    @property
    def rate(self) -> float:
        return self.resolved / self.total if self.total else 0.0


def scores(results: list[tuple[str, bool]], tasks: dict[str, str]) -> dict[str, FamilyScore]:
    """Per family: resolved of total, from (task id, resolved) pairs and task id -> family."""
    out: dict[str, FamilyScore] = {}
    for task_id, resolved in results:
        fam = tasks.get(task_id, "?")
        score = out.setdefault(fam, FamilyScore(family=fam))
        score.total += 1
        score.resolved += int(resolved)
    return out


def family_to_teach(before: dict[str, FamilyScore], taught: set[str] | None = None) -> str | None:
    """The family the model fails most (ties: catalog order), not yet taught; None when it
    solves every family."""
    taught = taught or set()
    open_ = [s for s in before.values() if s.total and s.resolved < s.total and s.family not in taught]
    if not open_:
        return None
    return min(open_, key=lambda s: s.rate).family


async def teach(
    store: Any,
    bus: Any,
    settings: MiniLabSettings,
    family: str,
    *,
    adapters_dir: Path,
    workspace_parent: Path | None = None,
    on_job: Any = None,
    flush: Any = None,
    parent: str | None = None,
) -> Any:
    """Run the oracle's lesson on `family`, train on it and register the adapter; returns
    the AdapterRecord (None when cancelled); `routes_after` says what each family then runs
    with. `on_job(job)` gets the ConsolidationJob as soon as it exists, so a caller can show its
    progress or cancel it. `flush()` (awaited) must return once the bus's events are in the
    store: the lesson is read back from there. `parent` (naive only) is the adapter the
    lesson continues; a routing lesson always starts from the base model."""
    from looper_engine.agent.runner import Runner
    from looper_engine.consolidation.job import ConsolidationJob
    from looper_engine.consolidation.synth import Selection
    from looper_engine.models.registry import create_backend

    tasks = teaching_tasks(settings, family)
    oracle = create_backend("scripted:oracle", rate=0)
    runner = Runner(
        tasks,
        oracle,
        agent_config(settings),
        bus,
        suite="world",
        concurrency=4,
        name=f"mini-lab lesson: {family}",
        workspace_parent=workspace_parent,
    )
    try:
        result = await runner.run()
    finally:
        await oracle.aclose()
    if flush is not None:
        await flush()
    ids = [e.episode_id for e in result.episodes if e.resolved]
    if not ids:
        raise UserError(f"the oracle solved none of the {family} lesson tasks; nothing to learn from")
    job = ConsolidationJob(
        store,
        bus,
        model=settings.model,
        strategy=settings.teach_strategy,
        train_config=settings.train,
        adapters_dir=adapters_dir,
        selection=Selection(episode_ids=ids),
        parent_adapter=parent if settings.teach_strategy == "naive" else None,
    )
    if on_job is not None:
        on_job(job)
    return await job.run()
