"""Continual-learning strategies: how a new chunk of experience becomes an adapter.

Every strategy is one class with two steps:

    plan = strategy.prepare(new_rows, history, previous_adapters, valid_rows=...)
    outcome = strategy.run(model_path, plan, out_dir, train_config)

`prepare` is cheap and pure (no mlx): it decides what to train on and from where, so a
plan can be shown before any training starts. `run` drives `train_adapter` once per job
in the plan and finishes up (a merge, a routing table). `consolidate` does both.

- `history` is the rows of the earlier chunks, one list per chunk, oldest first.
- `previous_adapters` is what this strategy produced for the earlier chunks, oldest first.
- Rows are `{"messages": [...], "meta": {"family": ...}}`; `meta` never reaches mlx-lm.

Strategies:

    naive     sequential fine-tuning: continue the last adapter on the new rows only
    replay    the same, with a seeded sample of earlier rows mixed in
    ewc       the same, with an elastic penalty that holds weights the earlier data needs
    routing   one adapter per task family; a task is routed to its family's adapter
    merge     a fresh adapter per chunk, then the average of all chunks' adapters
"""

from __future__ import annotations

import json
import random
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from looper_engine.consolidation.adapter_files import (
    AdapterConfig,
    LoraParameters,
    load_adapter_weights,
    read_adapter_config,
    write_adapter_atomically,
)
from looper_engine.consolidation.train import (
    TrainConfig,
    TrainHooks,
    TrainProgressInfo,
    TrainResult,
    clean_rows,
    row_family,
    train_adapter,
)
from looper_engine.errors import UserError

Rows = list[dict[str, Any]]
JobProgress = Callable[[str, TrainProgressInfo], None]

ROUTES_FILE = "routes.json"
DEFAULT_FAMILY = "default"


class TrainJob(BaseModel):
    """One `train_adapter` call of a plan."""

    name: str
    subdir: str | None = Field(None, description="folder under out_dir; None = out_dir itself")
    train_rows: Rows
    valid_rows: Rows = Field(default_factory=list)
    init_adapter: Path | None = None
    family: str | None = None


class StrategyPlan(BaseModel):
    strategy: str
    jobs: list[TrainJob]
    history_rows: Rows = Field(default_factory=list, description="earlier rows the strategy uses (ewc)")
    previous_adapter: Path | None = None
    carried_routes: dict[str, Path] = Field(
        default_factory=dict, description="routing: families kept as they were"
    )
    merge_sources: list[Path] = Field(default_factory=list, description="merge: earlier per-chunk adapters")
    notes: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        parts = [
            f"{j.name}: {len(j.train_rows)} rows" + (" (warm)" if j.init_adapter else "") for j in self.jobs
        ]
        return f"{self.strategy}: " + "; ".join(parts)


class StrategyOutcome(BaseModel):
    strategy: str
    status: Literal["finished", "cancelled"]
    adapter_dir: Path | None = Field(None, description="the adapter to evaluate; None for routing")
    routes: dict[str, Path] = Field(default_factory=dict, description="routing: family -> adapter")
    results: dict[str, TrainResult] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)

    def route(self, family: str | None) -> Path | None:
        return route(self.routes, family, default=self.adapter_dir)


def route(routes: dict[str, Path], family: str | None, default: Path | None = None) -> Path | None:
    """The adapter for a task family: its own, else the `default` family's, else `default`
    (None means the base model: no adapter has learned anything about that family)."""
    if family is not None and family in routes:
        return routes[family]
    return routes.get(DEFAULT_FAMILY, default)


def read_routes(folder: Path) -> dict[str, Path]:
    """The routing table a routing run wrote into its folder."""
    path = Path(folder) / ROUTES_FILE
    if not path.is_file():
        raise UserError(f"{folder} holds no routing table ({ROUTES_FILE})")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    base = Path(folder)
    return {fam: (base / p if not Path(p).is_absolute() else Path(p)) for fam, p in data["routes"].items()}


def _flatten(history: list[Rows]) -> Rows:
    return [row for chunk in history for row in chunk]


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return slug or "family"


class Strategy(ABC):
    """One way of consolidating a chunk. Subclasses implement `prepare`, and optionally
    `hooks` (change the loss) and `finish` (after all jobs trained)."""

    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, seed: int = 0, warm_start: bool = True) -> None:
        self.seed = seed
        self.warm_start = warm_start

    @abstractmethod
    def prepare(
        self,
        new_rows: Rows,
        history: list[Rows],
        previous_adapters: list[Path],
        *,
        valid_rows: Rows | None = None,
    ) -> StrategyPlan:
        """Decide what to train on. Pure and quick: no model is loaded."""

    def hooks(self, plan: StrategyPlan, job: TrainJob) -> TrainHooks | None:
        return None

    def finish(self, model_path: Path, plan: StrategyPlan, out_dir: Path, outcome: StrategyOutcome) -> None:
        """Called once every job has finished; may set `outcome.adapter_dir` or routes."""
        return None

    def options(self) -> dict[str, Any]:
        return {"seed": self.seed, "warm_start": self.warm_start}

    def run(
        self,
        model_path: Path,
        plan: StrategyPlan,
        out_dir: Path,
        config: TrainConfig,
        *,
        on_progress: JobProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> StrategyOutcome:
        """Train every job of the plan into `out_dir` (blocking; run it in a thread)."""
        out_dir = Path(out_dir)
        if out_dir.exists() and any(out_dir.iterdir()):
            raise UserError(f"{out_dir} is not empty; consolidate into a new folder")
        if not plan.jobs:
            raise UserError(f"the {self.name} plan has nothing to train")
        outcome = StrategyOutcome(strategy=self.name, status="finished", notes=list(plan.notes))
        for job in plan.jobs:
            dest = out_dir / job.subdir if job.subdir else out_dir
            meta = {"strategy": self.name, "strategy_options": self.options(), "job": job.name}
            if job.family is not None:
                meta["family"] = job.family

            def report(info: TrainProgressInfo, _job: str = job.name) -> None:
                if on_progress is not None:
                    on_progress(_job, info)

            result = train_adapter(
                model_path,
                job.train_rows,
                job.valid_rows,
                dest,
                config,
                on_progress=report,
                cancel=cancel,
                init_adapter=job.init_adapter,
                strategy_hooks=self.hooks(plan, job),
                metadata=meta,
            )
            outcome.results[job.name] = result
            outcome.notes.extend(f"{job.name}: {n}" for n in result.notes)
            if result.status == "cancelled":
                outcome.status = "cancelled"
                return outcome
        if len(plan.jobs) == 1 and not plan.jobs[0].subdir:
            outcome.adapter_dir = outcome.results[plan.jobs[0].name].adapter_dir
        self.finish(Path(model_path), plan, out_dir, outcome)
        return outcome

    def consolidate(
        self,
        model_path: Path,
        new_rows: Rows,
        history: list[Rows],
        previous_adapters: list[Path],
        out_dir: Path,
        config: TrainConfig,
        *,
        valid_rows: Rows | None = None,
        on_progress: JobProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> StrategyOutcome:
        plan = self.prepare(new_rows, history, previous_adapters, valid_rows=valid_rows)
        return self.run(model_path, plan, out_dir, config, on_progress=on_progress, cancel=cancel)

    def _single_job(self, rows: Rows, valid_rows: Rows | None, previous_adapters: list[Path]) -> TrainJob:
        if not rows:
            raise UserError(f"the {self.name} strategy got no new rows to train on")
        init = previous_adapters[-1] if (self.warm_start and previous_adapters) else None
        return TrainJob(name="main", train_rows=rows, valid_rows=list(valid_rows or []), init_adapter=init)


class NaiveStrategy(Strategy):
    """Sequential fine-tuning on the new chunk only: the baseline that forgets."""

    name = "naive"
    description = "continue the last adapter on the new experience only"

    def prepare(
        self,
        new_rows: Rows,
        history: list[Rows],
        previous_adapters: list[Path],
        *,
        valid_rows: Rows | None = None,
    ) -> StrategyPlan:
        job = self._single_job(new_rows, valid_rows, previous_adapters)
        return StrategyPlan(strategy=self.name, jobs=[job], previous_adapter=job.init_adapter)


class ReplayStrategy(Strategy):
    """Experience replay. `replay_ratio` is the share of the training mix drawn from earlier
    chunks: at 0.5 there are as many replayed rows as new ones (fewer when the earlier
    chunks hold fewer). Replayed rows are sampled without replacement, uniformly over all
    earlier rows, with the strategy's seed."""

    name = "replay"
    description = "new experience mixed with a seeded sample of earlier experience"

    def __init__(self, seed: int = 0, warm_start: bool = True, replay_ratio: float = 0.5) -> None:
        super().__init__(seed, warm_start)
        if not 0.0 <= replay_ratio < 1.0:
            raise UserError(f"replay_ratio must be in [0, 1), got {replay_ratio}")
        self.replay_ratio = replay_ratio

    def options(self) -> dict[str, Any]:
        return {**super().options(), "replay_ratio": self.replay_ratio}

    def prepare(
        self,
        new_rows: Rows,
        history: list[Rows],
        previous_adapters: list[Path],
        *,
        valid_rows: Rows | None = None,
    ) -> StrategyPlan:
        pool = _flatten(history)
        wanted = round(len(new_rows) * self.replay_ratio / (1.0 - self.replay_ratio))
        take = min(wanted, len(pool))
        replayed = random.Random(self.seed).sample(pool, take) if take else []
        mixed = list(new_rows) + replayed
        random.Random(self.seed + 1).shuffle(mixed)
        job = self._single_job(mixed, valid_rows, previous_adapters)
        notes = [f"replaying {take} earlier rows with {len(new_rows)} new ones"]
        if take < wanted:
            notes.append(f"only {len(pool)} earlier rows exist; wanted {wanted}")
        return StrategyPlan(strategy=self.name, jobs=[job], previous_adapter=job.init_adapter, notes=notes)


class EwcHooks(TrainHooks):
    """EWC for LoRA parameters.

    Before training, with the previous adapter loaded, the diagonal empirical Fisher of the
    LoRA parameters is estimated on earlier rows: the squared gradient of each sample's
    loss (one sample per backward pass, so it is a per-sample Fisher, not a batch one),
    averaged over up to `fisher_samples` samples. Training then minimises

        loss(new batch) + lambda / 2 * sum_i F_i * (theta_i - theta_prev_i)^2

    over the LoRA parameters theta, starting from theta_prev. The reported training loss
    includes the penalty; the validation loss does not (it is evaluated with the model in
    eval mode, where the penalty is left out), so validation curves stay comparable
    across strategies."""

    def __init__(
        self,
        history_rows: Rows,
        ewc_lambda: float,
        fisher_samples: int,
        seed: int,
    ) -> None:
        self.history_rows = history_rows
        self.ewc_lambda = ewc_lambda
        self.fisher_samples = fisher_samples
        self.seed = seed
        self.fisher: dict[str, Any] | None = None
        self.anchor: dict[str, Any] = {}
        self.samples_used = 0

    def on_model_ready(self, model: Any, tokenizer: Any, config: TrainConfig) -> None:
        import mlx.core as mx
        import mlx.nn as nn
        from mlx.utils import tree_flatten
        from mlx_lm.tuner.trainer import default_loss

        from looper_engine.consolidation.train import _chat_dataset, _make_batch

        rows = clean_rows(self.history_rows, what="earlier")
        if len(rows) > self.fisher_samples:
            rows = random.Random(self.seed).sample(rows, self.fisher_samples)
        ds = _chat_dataset(rows, tokenizer, config.mask_prompt)
        usable = [i for i in range(len(ds)) if ds[i][1] < min(len(ds[i][0]), config.max_seq_length)]
        self.anchor = {k: mx.array(v) for k, v in tree_flatten(model.trainable_parameters())}
        if not usable:
            return
        grad_fn = nn.value_and_grad(model, default_loss)
        model.eval()
        fisher = {k: mx.zeros_like(v) for k, v in self.anchor.items()}
        for i in usable:
            (_, _), grads = grad_fn(model, *_make_batch(ds, [i], config.max_seq_length))
            for k, g in tree_flatten(grads):
                fisher[k] = fisher[k] + mx.square(g)
            mx.eval(fisher)
        model.train()
        # A well-fit adapter has tiny gradients, so the raw Fisher's size says more about
        # how converged the previous run was than about which weights matter; dividing by
        # its mean keeps the relative importances and gives lambda a stable meaning.
        total = sum(v.sum() for v in fisher.values())
        count = sum(v.size for v in fisher.values())
        mean = (total / count).item()
        if mean <= 0.0:
            return
        self.fisher = {k: v / mean for k, v in fisher.items()}
        mx.eval(self.fisher)
        self.samples_used = len(usable)

    def wrap_loss(self, loss: Callable[..., Any]) -> Callable[..., Any]:
        from mlx.utils import tree_flatten

        def ewc_loss(model: Any, batch: Any, lengths: Any) -> Any:
            ce, ntoks = loss(model, batch, lengths)
            if self.fisher is None or not model.training:
                return ce, ntoks
            params = dict(tree_flatten(model.trainable_parameters()))
            penalty = sum((self.fisher[k] * (params[k] - self.anchor[k]) ** 2).sum() for k in self.fisher)
            return ce + 0.5 * self.ewc_lambda * penalty, ntoks

        return ewc_loss

    def adapter_metadata(self) -> dict[str, Any]:
        return {"ewc_lambda": self.ewc_lambda, "fisher_samples": self.samples_used}


class EwcStrategy(Strategy):
    """Sequential fine-tuning from the last adapter with an EWC penalty (see EwcHooks).
    With no earlier rows or no previous adapter there is nothing to protect and it trains
    exactly like naive."""

    name = "ewc"
    description = "continue the last adapter, penalising changes the earlier data's Fisher marks as costly"

    def __init__(
        self,
        seed: int = 0,
        warm_start: bool = True,
        ewc_lambda: float = 10.0,
        fisher_samples: int = 32,
    ) -> None:
        super().__init__(seed, warm_start)
        if ewc_lambda < 0:
            raise UserError(f"ewc_lambda must be >= 0, got {ewc_lambda}")
        if fisher_samples < 1:
            raise UserError(f"fisher_samples must be >= 1, got {fisher_samples}")
        self.ewc_lambda = ewc_lambda
        self.fisher_samples = fisher_samples

    def options(self) -> dict[str, Any]:
        return {**super().options(), "ewc_lambda": self.ewc_lambda, "fisher_samples": self.fisher_samples}

    def prepare(
        self,
        new_rows: Rows,
        history: list[Rows],
        previous_adapters: list[Path],
        *,
        valid_rows: Rows | None = None,
    ) -> StrategyPlan:
        job = self._single_job(new_rows, valid_rows, previous_adapters)
        notes = []
        history_rows = _flatten(history)
        if job.init_adapter is None or not history_rows:
            notes.append("no previous adapter or earlier rows: nothing to protect, training as naive")
            history_rows = []
        return StrategyPlan(
            strategy=self.name,
            jobs=[job],
            history_rows=history_rows,
            previous_adapter=job.init_adapter,
            notes=notes,
        )

    def hooks(self, plan: StrategyPlan, job: TrainJob) -> TrainHooks | None:
        if not plan.history_rows or job.init_adapter is None:
            return None
        return EwcHooks(plan.history_rows, self.ewc_lambda, self.fisher_samples, self.seed)


class RoutingStrategy(Strategy):
    """One adapter per task family (`row["meta"]["family"]`; rows without one form the
    `default` family). Each family's adapter trains on that family's new rows, continuing
    the family's previous adapter; families absent from the new chunk keep their adapter.
    `route(family)` picks the adapter for a task; the table is saved as routes.json."""

    name = "routing"
    description = "one adapter per task family, each trained on its own family's experience"

    def prepare(
        self,
        new_rows: Rows,
        history: list[Rows],
        previous_adapters: list[Path],
        *,
        valid_rows: Rows | None = None,
    ) -> StrategyPlan:
        if not new_rows:
            raise UserError("the routing strategy got no new rows to train on")
        by_family: dict[str, Rows] = {}
        for row in new_rows:
            by_family.setdefault(row_family(row) or DEFAULT_FAMILY, []).append(row)
        valid_by_family: dict[str, Rows] = {}
        for row in valid_rows or []:
            valid_by_family.setdefault(row_family(row) or DEFAULT_FAMILY, []).append(row)
        previous: dict[str, Path] = {}
        for adapter in previous_adapters:
            fam = read_adapter_config(adapter).looper.get("family")
            if fam is not None:
                previous[str(fam)] = Path(adapter)
        used: set[str] = set()
        jobs = []
        for fam in sorted(by_family):
            sub = _slug(fam)
            while sub in used:
                sub += "_"
            used.add(sub)
            jobs.append(
                TrainJob(
                    name=fam,
                    subdir=sub,
                    family=fam,
                    train_rows=by_family[fam],
                    valid_rows=valid_by_family.get(fam, []),
                    init_adapter=previous.get(fam) if self.warm_start else None,
                )
            )
        carried = {fam: p for fam, p in previous.items() if fam not in by_family}
        notes = [f"{len(jobs)} families: " + ", ".join(f"{j.name} ({len(j.train_rows)})" for j in jobs)]
        if carried:
            notes.append("kept unchanged: " + ", ".join(sorted(carried)))
        return StrategyPlan(strategy=self.name, jobs=jobs, carried_routes=carried, notes=notes)

    def finish(self, model_path: Path, plan: StrategyPlan, out_dir: Path, outcome: StrategyOutcome) -> None:
        routes = dict(plan.carried_routes)
        for job in plan.jobs:
            adapter = outcome.results[job.name].adapter_dir
            if adapter is not None and job.family is not None:
                routes[job.family] = adapter
        outcome.routes = routes
        table = {
            fam: (str(p.relative_to(out_dir)) if p.is_relative_to(out_dir) else str(p))
            for fam, p in routes.items()
        }
        (out_dir / ROUTES_FILE).write_text(json.dumps({"routes": table}, indent=2) + "\n")


MergeMode = Literal["ab", "delta"]


def merge_adapters(
    adapters: list[Path],
    dest: Path,
    *,
    mode: MergeMode = "ab",
    weights: list[float] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Merge LoRA adapters of one base model into a new adapter folder at `dest`.

    mode "ab": the (weighted) average of the A matrices and of the B matrices, at the
        same rank. Cheap and rank-preserving, but not the average of the weight updates:
        mean(B) @ mean(A) != mean(B @ A) unless the adapters agree. It works best when
        the adapters share their initial A (Looper seeds LoRA init, so same-seed runs do).
    mode "delta": the exact (weighted) average of the updates scale*B@A, stored as one
        LoRA of rank sum(ranks) by stacking the A's and the weighted B's. Exact, at the
        cost of a rank (and a file) that grows with the number of adapters."""
    import mlx.core as mx

    if not adapters:
        raise UserError("merge needs at least one adapter")
    if mode not in ("ab", "delta"):
        raise UserError(f"unknown merge mode {mode!r}; known: ab, delta")
    w = list(weights) if weights is not None else [1.0 / len(adapters)] * len(adapters)
    if len(w) != len(adapters):
        raise UserError(f"{len(w)} merge weights for {len(adapters)} adapters")
    cfgs = [read_adapter_config(a) for a in adapters]
    tensors = [load_adapter_weights(a) for a in adapters]
    first = cfgs[0]
    for a, cfg, t in zip(adapters[1:], cfgs[1:], tensors[1:], strict=True):
        if cfg.fine_tune_type != "lora":
            raise UserError(f"{a} is a {cfg.fine_tune_type} adapter; only LoRA adapters can be merged")
        if cfg.num_layers != first.num_layers or cfg.lora_parameters.keys != first.lora_parameters.keys:
            raise UserError(f"{a} adapts different layers than {adapters[0]}")
        if set(t) != set(tensors[0]):
            raise UserError(f"{a} holds different tensors than {adapters[0]}")
        if mode == "ab" and (
            cfg.lora_parameters.rank != first.lora_parameters.rank
            or cfg.lora_parameters.scale != first.lora_parameters.scale
        ):
            raise UserError(f"{a} has another rank or scale than {adapters[0]}; use mode 'delta'")
    if any(not (k.endswith(".lora_a") or k.endswith(".lora_b")) for k in tensors[0]):
        raise UserError(f"{adapters[0]} holds tensors other than lora_a/lora_b; cannot merge")
    scale = first.lora_parameters.scale

    merged: dict[str, Any] = {}
    if mode == "ab":
        for k in tensors[0]:
            merged[k] = sum(wi * t[k] for wi, t in zip(w, tensors, strict=True))
        rank = first.lora_parameters.rank
    else:
        # scale*A_cat@B_cat = sum_i w_i*scale_i*A_i@B_i, with B_i carrying w_i*scale_i/scale.
        for k in tensors[0]:
            if k.endswith(".lora_a"):
                merged[k] = mx.concatenate([t[k] for t in tensors], axis=1)
            else:
                merged[k] = mx.concatenate(
                    [
                        t[k] * (wi * c.lora_parameters.scale / scale)
                        for wi, t, c in zip(w, tensors, cfgs, strict=True)
                    ],
                    axis=0,
                )
        rank = sum(c.lora_parameters.rank for c in cfgs)
    mx.eval(merged)
    cfg = AdapterConfig(
        fine_tune_type="lora",
        num_layers=first.num_layers,
        lora_parameters=LoraParameters(
            rank=rank, scale=scale, dropout=first.lora_parameters.dropout, keys=first.lora_parameters.keys
        ),
        model=first.model,
        looper={
            **{k: v for k, v in first.looper.items() if k in ("base_model",)},
            **(metadata or {}),
            "merged_from": [str(Path(a).resolve()) for a in adapters],
            "merge_mode": mode,
            "merge_weights": w,
        },
    )
    return write_adapter_atomically(dest, merged, cfg)


def _merge_sources(adapters: list[Path]) -> list[Path]:
    """The per-chunk adapters behind a list of adapters: a merge result stands for the
    adapters it was merged from, so repeated merging stays a uniform average over chunks."""
    out: list[Path] = []
    for a in adapters:
        sources = read_adapter_config(a).looper.get("merged_from")
        if sources:
            out.extend(Path(s) for s in sources)
        else:
            out.append(Path(a))
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


class MergeStrategy(Strategy):
    """A fresh adapter on each new chunk, then the uniform average of every chunk's adapter
    (see merge_adapters for the two averaging modes). The merged adapter is written to
    out_dir itself; the chunk's own adapter to out_dir/chunk."""

    name = "merge"
    description = "a fresh adapter per chunk, averaged with the earlier chunks' adapters"

    def __init__(self, seed: int = 0, warm_start: bool = False, mode: MergeMode = "ab") -> None:
        super().__init__(seed, warm_start)
        if mode not in ("ab", "delta"):
            raise UserError(f"unknown merge mode {mode!r}; known: ab, delta")
        self.mode: MergeMode = mode

    def options(self) -> dict[str, Any]:
        return {**super().options(), "mode": self.mode}

    def prepare(
        self,
        new_rows: Rows,
        history: list[Rows],
        previous_adapters: list[Path],
        *,
        valid_rows: Rows | None = None,
    ) -> StrategyPlan:
        if not new_rows:
            raise UserError("the merge strategy got no new rows to train on")
        sources = _merge_sources(previous_adapters)
        init = previous_adapters[-1] if (self.warm_start and previous_adapters) else None
        job = TrainJob(
            name="chunk",
            subdir="chunk",
            train_rows=list(new_rows),
            valid_rows=list(valid_rows or []),
            init_adapter=init,
        )
        notes = [f"merging with {len(sources)} earlier chunk adapters ({self.mode})"]
        return StrategyPlan(strategy=self.name, jobs=[job], merge_sources=sources, notes=notes)

    def finish(self, model_path: Path, plan: StrategyPlan, out_dir: Path, outcome: StrategyOutcome) -> None:
        chunk = outcome.results["chunk"].adapter_dir
        if chunk is None:
            return
        outcome.adapter_dir = merge_adapters(
            [*plan.merge_sources, chunk],
            out_dir,
            mode=self.mode,
            metadata={"strategy": self.name, "strategy_options": self.options()},
        )


_CLASSES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (NaiveStrategy, ReplayStrategy, EwcStrategy, RoutingStrategy, MergeStrategy)
}
STRATEGIES: tuple[str, ...] = tuple(_CLASSES)


def get_strategy(name: str, **options: Any) -> Strategy:
    """The strategy called `name`, built with `options` (e.g. replay_ratio=0.3).
    UserError for an unknown name or option."""
    cls = _CLASSES.get(name.strip().lower()) if isinstance(name, str) else None
    if cls is None:
        raise UserError(f"unknown strategy {name!r}; known strategies: {', '.join(STRATEGIES)}")
    try:
        return cls(**options)
    except TypeError as exc:
        raise UserError(f"bad option for strategy {cls.name}: {exc}") from None
