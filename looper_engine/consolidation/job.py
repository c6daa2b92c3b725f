"""One consolidation job: the data selection, its checks, training with a strategy in a
worker thread, progress as events, cancel, and the adapter registered when it is whole.

The CLI (`looper train`) and the TUI training screen both drive this class."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from looper_engine.consolidation.registry import AdapterRecord, get_adapter, register_adapter
from looper_engine.consolidation.synth import Dataset, Selection, synthesize
from looper_engine.errors import UserError
from looper_engine.events import EventBus, TrainFinished, TrainProgress
from looper_engine.runtime.mlx_threads import to_mlx_thread
from looper_engine.store.db import Store

DEFAULT_ADAPTERS_DIR = Path("adapters")


def resolve_model_path(model: str) -> Path:
    """`mlx:PATH`, `mlx:PATH@ADAPTER` or a plain PATH -> the base model folder."""
    spec = model[4:] if model.startswith("mlx:") else model
    spec = spec.split("@", 1)[0]
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise UserError(f"base model {path} is missing or not an MLX model folder (no config.json)")
    return path


class ConsolidationJob:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        *,
        model: str,
        strategy: str = "naive",
        train_config: Any = None,
        adapters_dir: Path = DEFAULT_ADAPTERS_DIR,
        selection: Selection | None = None,
        dataset: Dataset | None = None,
        parent_adapter: str | None = None,
        strategy_options: dict[str, Any] | None = None,
    ) -> None:
        from looper_engine.consolidation.strategies import get_strategy
        from looper_engine.consolidation.train import TrainConfig

        self.store = store
        self.bus = bus
        self.model_path = resolve_model_path(model)
        self.strategy = get_strategy(strategy, **(strategy_options or {}))
        self.config: TrainConfig = train_config or TrainConfig()
        self.adapters_dir = Path(adapters_dir)
        self.selection = selection or Selection()
        self.dataset = dataset
        self.parent_adapter = parent_adapter
        self.id = "train-" + uuid.uuid4().hex[:8]
        self.cancel_event = threading.Event()
        self.curve: list[dict[str, Any]] = []
        self.last: TrainProgress | None = None

    async def prepare(self) -> Dataset:
        """Synthesize (once) and return the data with its stats and format check."""
        if self.dataset is None:
            self.dataset = await synthesize(self.store, self.selection, seed=self.config.seed)
        return self.dataset

    def cancel(self) -> None:
        self.cancel_event.set()

    def _publish(self, event: Any) -> None:
        self.bus.publish(event)

    async def run(self) -> AdapterRecord | None:
        """Train; register and return the adapter, or None when cancelled. A failure while
        training or saving leaves no adapter folder and no registry row."""
        data = await self.prepare()
        if not data.stats.format_ok:
            first = data.stats.format_problems[0]
            raise UserError(
                f"format check failed for {len(data.stats.format_problems)} samples "
                f"(first: {first.episode_id} step {first.step}: {first.reason}); nothing trained"
            )
        previous: list[Path] = []
        if self.parent_adapter:
            rec = await get_adapter(self.store, self.parent_adapter)
            if rec is None:
                raise UserError(f"no adapter {self.parent_adapter!r} in the registry (see `looper adapters`)")
            previous.append(Path(rec.path))
        from looper_engine.consolidation.adapter_files import new_adapter_id

        adapter_id = new_adapter_id()
        out_dir = self.adapters_dir / adapter_id
        if out_dir.exists():
            raise UserError(f"{out_dir} already exists; adapters are never overwritten")
        self.adapters_dir.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        started = time.monotonic()

        def on_progress(job: str, info: Any) -> None:
            point = {"iteration": info.iteration, "train_loss": info.train_loss, "val_loss": info.val_loss}
            ev = TrainProgress(
                job_id=self.id,
                iteration=info.iteration,
                iterations=info.iterations,
                train_loss=info.train_loss,
                val_loss=info.val_loss,
                tokens_per_second=info.tokens_per_second,
                eta_s=info.eta_s,
                peak_memory_gb=info.peak_memory_gb,
            )
            loop.call_soon_threadsafe(self._record_progress, point, ev)

        train_rows = [s.row_with_meta() for s in data.train]
        valid_rows = [s.row_with_meta() for s in data.valid]
        try:
            outcome = await to_mlx_thread(
                self.strategy.consolidate,
                self.model_path,
                train_rows,
                [],
                previous,
                out_dir,
                self.config,
                valid_rows=valid_rows,
                on_progress=on_progress,
                cancel=self.cancel_event,
            )
        except UserError:
            shutil.rmtree(out_dir, ignore_errors=True)
            raise
        except Exception as exc:  # disk full, mlx failure: no half-written adapter
            shutil.rmtree(out_dir, ignore_errors=True)
            self._publish(TrainFinished(job_id=self.id, status="errored", message=f"{type(exc).__name__}: {exc}"))
            raise
        if outcome.status == "cancelled":
            shutil.rmtree(out_dir, ignore_errors=True)
            self._publish(TrainFinished(job_id=self.id, status="cancelled", message="cancelled by the user"))
            return None
        results = list(outcome.results.values())
        record = AdapterRecord(
            id=adapter_id,
            parent_id=self.parent_adapter,
            strategy=self.strategy.name,
            base_model=str(self.model_path.resolve()),
            data_hash=data.data_hash,
            data_stats=data.stats.model_dump(exclude={"format_problems"}),
            hyperparams={**self.config.model_dump(), "strategy_options": self.strategy.options()},
            curve=self.curve,
            metrics={
                "seconds": time.monotonic() - started,
                "tokens": sum(r.tokens for r in results),
                "tokens_per_second": results[-1].tokens_per_second if results else None,
                "peak_memory_gb": max((r.peak_memory_gb or 0.0) for r in results) if results else None,
                "final_train_loss": next((p["train_loss"] for p in reversed(self.curve) if p["train_loss"] is not None), None),
                "final_val_loss": next((p["val_loss"] for p in reversed(self.curve) if p["val_loss"] is not None), None),
                "routes": {k: str(v) for k, v in outcome.routes.items()},
            },
            path=str(outcome.adapter_dir or out_dir),
        )
        await register_adapter(self.store, record)
        self._publish(TrainFinished(job_id=self.id, status="finished", adapter_id=adapter_id))
        return record

    def _record_progress(self, point: dict[str, Any], ev: TrainProgress) -> None:
        self.curve.append(point)
        self.last = ev
        self._publish(ev)
