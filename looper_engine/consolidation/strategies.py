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
    cumulative  retrain from the base model on every chunk seen so far (the joint upper bound)
    share     a shared low-rank basis from the SVD of the earlier adapters' updates; only the
              coefficients in that basis are trained on a new chunk
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

from pydantic import BaseModel, ConfigDict, Field

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
    basis_sources: list[Path] = Field(default_factory=list, description="share: adapters spanning the basis")
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


class CumulativeStrategy(Strategy):
    """Joint training, the upper bound every table shows: each chunk retrains a fresh adapter
    from the base model on every row seen so far (earlier chunks and the new one, shuffled
    with the seed). Nothing is carried over, so nothing can be forgotten; its cost grows
    with the stream (the same `iters` now cover more rows)."""

    name = "cumulative"
    description = "retrain from the base model on every chunk seen so far"

    def __init__(self, seed: int = 0, warm_start: bool = False) -> None:
        super().__init__(seed, warm_start=False)
        if warm_start:
            raise UserError("the cumulative strategy always trains from the base model (warm_start = false)")

    def prepare(
        self,
        new_rows: Rows,
        history: list[Rows],
        previous_adapters: list[Path],
        *,
        valid_rows: Rows | None = None,
    ) -> StrategyPlan:
        if not new_rows:
            raise UserError("the cumulative strategy got no new rows to train on")
        earlier = _flatten(history)
        rows = earlier + list(new_rows)
        random.Random(self.seed).shuffle(rows)
        job = TrainJob(name="main", train_rows=rows, valid_rows=list(valid_rows or []))
        notes = [f"joint training from the base model on {len(earlier)} earlier and {len(new_rows)} new rows"]
        return StrategyPlan(strategy=self.name, jobs=[job], notes=notes)


class ShareBasis(BaseModel):
    """The shared basis of one adapted linear layer: update = scale * A @ C @ B."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    a: Any = Field(description="(in, m): orthonormal columns spanning the earlier updates' inputs")
    b: Any = Field(description="(m, out): orthonormal rows spanning the earlier updates' outputs")
    coef: Any = Field(description="(m, m): the starting coefficients")
    energy: float = Field(description="share of the earlier updates' squared singular values kept")


def share_basis(
    adapters: list[Path], rank: int, *, start_from: Path | None = None, scale: float | None = None
) -> tuple[dict[str, ShareBasis], AdapterConfig]:
    """Per adapted layer, the top-`rank` singular directions of the earlier adapters' updates
    D_i = scale_i * A_i @ B_i: left ones from [D_1 ... D_n], right ones from [D_1; ...; D_n].
    Computed from QR factors of the stacked LoRA matrices, so no full (in, out) matrix is
    formed. `start_from` (an adapter) gives the starting coefficients: its update projected
    onto the basis; else zeros (the base model). Returns the bases by module name and the
    first adapter's config (layers, keys)."""
    import numpy as np

    if not adapters:
        raise UserError("share needs at least one earlier adapter to span its basis")
    cfgs = [read_adapter_config(a) for a in adapters]
    tensors = [load_adapter_weights(a) for a in adapters]
    first = cfgs[0]
    for a, cfg, t in zip(adapters, cfgs, tensors, strict=True):
        if cfg.fine_tune_type != "lora":
            raise UserError(
                f"{a} is a {cfg.fine_tune_type} fine-tune; share builds its basis from LoRA adapters"
            )
        if cfg.num_layers != first.num_layers or cfg.lora_parameters.keys != first.lora_parameters.keys:
            raise UserError(f"{a} adapts different layers than {adapters[0]}")
        if set(t) != set(tensors[0]):
            raise UserError(f"{a} holds different tensors than {adapters[0]}")
    out_scale = scale if scale is not None else first.lora_parameters.scale
    start = load_adapter_weights(start_from) if start_from is not None else None
    start_scale = read_adapter_config(start_from).lora_parameters.scale if start_from is not None else 0.0
    names = sorted(k[: -len(".lora_a")] for k in tensors[0] if k.endswith(".lora_a"))
    bases: dict[str, ShareBasis] = {}
    for name in names:
        a_list = [np.asarray(t[f"{name}.lora_a"], dtype=np.float64) for t in tensors]
        b_list = [
            np.asarray(t[f"{name}.lora_b"], dtype=np.float64) * c.lora_parameters.scale
            for t, c in zip(tensors, cfgs, strict=True)
        ]
        # [D_1 ... D_n] = Qa @ hstack(Ra_i @ B_i): the SVD of the small right factor gives the
        # left singular vectors; the right side is the same with the roles swapped.
        qa, ra = np.linalg.qr(np.hstack(a_list))
        qb, rb = np.linalg.qr(np.hstack([b.T for b in b_list]))
        cuts = np.cumsum([0] + [x.shape[1] for x in a_list])
        left = np.hstack([ra[:, cuts[i] : cuts[i + 1]] @ b_list[i] for i in range(len(a_list))])
        right = np.hstack([rb[:, cuts[i] : cuts[i + 1]] @ a_list[i].T for i in range(len(a_list))])
        ul, sl, _ = np.linalg.svd(left, full_matrices=False)
        ur, _, _ = np.linalg.svd(right, full_matrices=False)
        m = min(rank, ul.shape[1], ur.shape[1])
        basis_a = qa @ ul[:, :m]
        basis_b = (qb @ ur[:, :m]).T
        total = float((sl**2).sum())
        energy = float((sl[:m] ** 2).sum() / total) if total > 0 else 1.0
        coef = np.zeros((m, m))
        if start is not None:
            delta_a = np.asarray(start[f"{name}.lora_a"], dtype=np.float64)
            delta_b = np.asarray(start[f"{name}.lora_b"], dtype=np.float64) * start_scale
            coef = (basis_a.T @ delta_a) @ (delta_b @ basis_b.T) / out_scale
        bases[name] = ShareBasis(
            a=basis_a.astype(np.float32),
            b=basis_b.astype(np.float32),
            coef=coef.astype(np.float32),
            energy=energy,
        )
    ranks = {v.a.shape[1] for v in bases.values()}
    if len(ranks) != 1:
        raise UserError(f"the earlier adapters span bases of different ranks per layer ({sorted(ranks)})")
    return bases, first


class ShareHooks(TrainHooks):
    """Puts a `_ShareLinear` (frozen basis, trainable coefficients) in place of each LoRA
    layer, so only the coefficients train, and writes the result back as a plain LoRA
    adapter of rank m (lora_a = A, lora_b = C @ B) that loads anywhere a LoRA does."""

    def __init__(self, sources: list[Path], rank: int, start_from: Path | None) -> None:
        self.sources = sources
        self.rank = rank
        self.start_from = start_from
        self.bases: dict[str, ShareBasis] = {}
        self.scale = 1.0

    def on_model_ready(self, model: Any, tokenizer: Any, config: TrainConfig) -> None:
        import mlx.core as mx
        from mlx.utils import tree_unflatten
        from mlx_lm.tuner.lora import LoRALinear

        if config.fine_tune_type != "lora":
            raise UserError("the share strategy trains LoRA coefficients; fine_tune_type must be lora")
        self.scale = config.scale
        self.bases, _ = share_basis(self.sources, self.rank, start_from=self.start_from, scale=config.scale)
        lora_layers = {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}
        if set(lora_layers) != set(self.bases):
            missing = sorted(set(lora_layers) ^ set(self.bases))
            raise UserError(
                f"the earlier adapters adapt other layers than this run (e.g. {missing[0]}); "
                "use the same num_layers and keys"
            )
        share_cls = _share_linear_class()
        swapped = []
        for n, module in lora_layers.items():
            basis = self.bases[n]
            swapped.append(
                (
                    n,
                    share_cls(
                        module.linear, mx.array(basis.a), mx.array(basis.b), mx.array(basis.coef), self.scale
                    ),
                )
            )
        model.update_modules(tree_unflatten(swapped))
        model.freeze()
        for n, _ in swapped:
            dict(model.named_modules())[n].unfreeze(recurse=False, keys=["coef"])
        mx.eval(model.parameters())

    def export(
        self, model: Any, weights: dict[str, Any], config: AdapterConfig
    ) -> tuple[dict[str, Any], AdapterConfig]:
        out: dict[str, Any] = {}
        for key, coef in weights.items():
            name = key[: -len(".coef")]
            basis = self.bases[name]
            import mlx.core as mx

            out[f"{name}.lora_a"] = mx.array(basis.a)
            out[f"{name}.lora_b"] = coef @ mx.array(basis.b)
        rank = next(iter(self.bases.values())).a.shape[1] if self.bases else config.lora_parameters.rank
        params = config.lora_parameters.model_copy(update={"rank": rank, "scale": self.scale})
        return out, config.model_copy(update={"lora_parameters": params})

    def adapter_metadata(self) -> dict[str, Any]:
        energies = [b.energy for b in self.bases.values()]
        return {
            "share_basis_from": [str(Path(p).resolve()) for p in self.sources],
            "share_rank": self.rank,
            "share_energy_min": min(energies) if energies else None,
        }


def _share_linear_class() -> type:
    import mlx.nn as nn

    class _ShareLinear(nn.Module):
        def __init__(self, linear: Any, basis_a: Any, basis_b: Any, coef: Any, scale: float) -> None:
            super().__init__()
            self.linear = linear
            self.basis_a = basis_a
            self.basis_b = basis_b
            self.coef = coef
            self.scale = scale

        def __call__(self, x: Any) -> Any:
            return self.linear(x) + self.scale * (((x @ self.basis_a) @ self.coef) @ self.basis_b)

    return _ShareLinear


class ShareStrategy(Strategy):
    """Shared-subspace continual learning. The first chunk trains an ordinary LoRA adapter
    (there is no basis yet). Every later chunk builds, per layer, a basis of `basis_rank`
    directions from the SVD of all earlier adapters' updates (see share_basis) and trains
    only the (m, m) coefficients in it, starting from the last adapter's update projected
    onto the basis (from zero with warm_start false). New knowledge has to fit the subspace
    the earlier chunks found: few parameters per chunk, so it should learn less and forget
    less than naive fine-tuning. The result is a plain LoRA adapter of rank m."""

    name = "share"
    description = "train only coefficients in a shared basis from the SVD of earlier adapters"

    def __init__(self, seed: int = 0, warm_start: bool = True, basis_rank: int = 16) -> None:
        super().__init__(seed, warm_start)
        if basis_rank < 1:
            raise UserError(f"basis_rank must be >= 1, got {basis_rank}")
        self.basis_rank = basis_rank

    def options(self) -> dict[str, Any]:
        return {**super().options(), "basis_rank": self.basis_rank}

    def prepare(
        self,
        new_rows: Rows,
        history: list[Rows],
        previous_adapters: list[Path],
        *,
        valid_rows: Rows | None = None,
    ) -> StrategyPlan:
        if not new_rows:
            raise UserError("the share strategy got no new rows to train on")
        job = TrainJob(name="main", train_rows=list(new_rows), valid_rows=list(valid_rows or []))
        if not previous_adapters:
            note = "no earlier adapter: training an ordinary LoRA adapter, which spans the basis from now on"
            return StrategyPlan(strategy=self.name, jobs=[job], notes=[note])
        notes = [
            f"coefficients only, in a rank-{self.basis_rank} basis from {len(previous_adapters)} earlier adapters"
            + (" (starting from the last one)" if self.warm_start else " (starting from zero)")
        ]
        return StrategyPlan(
            strategy=self.name,
            jobs=[job],
            basis_sources=[Path(p) for p in previous_adapters],
            previous_adapter=Path(previous_adapters[-1]) if self.warm_start else None,
            notes=notes,
        )

    def hooks(self, plan: StrategyPlan, job: TrainJob) -> TrainHooks | None:
        if not plan.basis_sources:
            return None
        return ShareHooks(plan.basis_sources, self.basis_rank, plan.previous_adapter)


_CLASSES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        NaiveStrategy,
        ReplayStrategy,
        EwcStrategy,
        RoutingStrategy,
        MergeStrategy,
        CumulativeStrategy,
        ShareStrategy,
    )
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
