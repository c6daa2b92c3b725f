"""`looper synth`, `looper train`, `looper adapters`: the skill layer, headless."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from looper_engine.errors import UserError
from looper_engine.store.db import DEFAULT_DB


def _db(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "db_sub", None) or getattr(args, "db", None) or DEFAULT_DB)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="turn stored episodes into training data (train.jsonl, valid.jsonl)")
    p.add_argument("--db", dest="db_sub", default=None)
    p.add_argument("--out", required=True, help="output folder")
    _selection_args(p)
    p.add_argument("--valid-share", type=float, default=0.2, help="share of tasks held out for validation")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("train", help="train a LoRA adapter with a strategy (mlx-lm)")
    p.add_argument("--model", required=True, help="base model: an MLX folder or mlx:PATH")
    p.add_argument("--data", default=None, help="a folder from `looper synth` (default: synthesize from --db)")
    p.add_argument("--db", dest="db_sub", default=None)
    p.add_argument("--strategy", default="naive", help="naive, replay, ewc, routing, merge, cumulative, share")
    p.add_argument("--parent", default=None, help="continue from this adapter id")
    p.add_argument("--adapters", default="adapters", help="adapter folder (default adapters/)")
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--rank", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--layers", type=int, default=None, help="blocks to adapt from the top (-1 = all)")
    p.add_argument(
        "--full", action="store_true", help="full fine-tuning: train the model's weights, not LoRA layers"
    )
    _selection_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("adapters", help="list the adapter registry")
    p.add_argument("--db", dest="db_sub", default=None)
    p.set_defaults(func=cmd_adapters)
    from looper_engine.interop.commands import add_adapter_commands

    add_adapter_commands(p)


def _selection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", action="append", default=[], help="only these runs")
    p.add_argument("--suite", action="append", default=[])
    p.add_argument("--family", action="append", default=[])
    p.add_argument("--from-model", action="append", default=[], help="only episodes of this model spec")
    p.add_argument("--include-unresolved", action="store_true", help="learn from unresolved episodes too")
    p.add_argument("--keep-failed-steps", action="store_true")
    p.add_argument("--keep-looping-steps", action="store_true")


def _selection(args: argparse.Namespace) -> Any:
    from looper_engine.consolidation.synth import Selection

    return Selection(
        resolved_only=not args.include_unresolved,
        run_ids=args.run,
        suites=args.suite,
        families=args.family,
        models=args.from_model,
        keep_failed_steps=args.keep_failed_steps,
        keep_looping_steps=args.keep_looping_steps,
    )


def _print_stats(console: Any, stats: Any) -> None:
    for line in stats.lines():
        console.print(line)


def cmd_synth(args: argparse.Namespace) -> int:
    from rich.console import Console

    from looper_engine.consolidation.synth import synthesize
    from looper_engine.store.db import Store

    async def go() -> int:
        store = await Store.open(_db(args), create=False)
        try:
            data = await synthesize(store, _selection(args), valid_fraction=args.valid_share, seed=args.seed)
        finally:
            await store.close()
        console = Console()
        _print_stats(console, data.stats)
        if not data.stats.format_ok:
            raise UserError(f"format check failed for {len(data.stats.format_problems)} samples; nothing written")
        data.write(Path(args.out))
        console.print(f"wrote {args.out}/train.jsonl and {args.out}/valid.jsonl (data hash {data.data_hash})")
        return 0

    return asyncio.run(go())


def _read_data_dir(path: Path) -> Any:
    """A folder from `looper synth` (or any mlx-lm chat data folder) -> a Dataset."""
    from looper_engine.consolidation.synth import Dataset, DataStats, Sample

    if not (path / "train.jsonl").is_file():
        raise UserError(f"{path} has no train.jsonl (make one with `looper synth --out {path}`)")
    parts: dict[str, list[Sample]] = {}
    for name in ("train", "valid"):
        rows_file, meta_file = path / f"{name}.jsonl", path / f"{name}.meta.jsonl"
        rows = _jsonl(rows_file) if rows_file.is_file() else []
        metas = _jsonl(meta_file) if meta_file.is_file() else [{} for _ in rows]
        samples = []
        for i, (row, meta) in enumerate(zip(rows, metas, strict=False)):
            if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
                raise UserError(f"{rows_file}:{i + 1}: a row needs a 'messages' list")
            samples.append(
                Sample(
                    messages=row["messages"],
                    task_id=meta.get("task_id", ""),
                    family=meta.get("family", "default"),
                    episode_id="",
                    step=i + 1,
                    resolved=True,
                )
            )
        parts[name] = samples
    if not parts["valid"]:
        raise UserError(f"{path}/valid.jsonl is missing or empty; the data set is too small to split")
    everything = parts["train"] + parts["valid"]
    stats_file = path / "stats.json"
    if stats_file.is_file():
        stats = DataStats.model_validate_json(stats_file.read_text())
    else:
        lengths = [sum(len(m.get("content", "")) // 4 for m in s.messages) for s in everything]
        stats = DataStats(
            samples=len(everything), train_samples=len(parts["train"]), valid_samples=len(parts["valid"]),
            tokens=sum(lengths), tasks=len({s.task_id for s in everything}), families={}, episodes=0,
            resolved_share=1.0, longest_sample_tokens=max(lengths), dropped_failed_steps=0,
            dropped_looping_steps=0, dropped_duplicates=0, format_ok=True,
        )
    import hashlib

    digest = hashlib.sha256((path / "train.jsonl").read_bytes()).hexdigest()[:16]
    return Dataset(train=parts["train"], valid=parts["valid"], stats=stats, data_hash=digest)


def _jsonl(path: Path) -> list[Any]:
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{i + 1}: not JSON ({exc.msg})") from exc
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from looper_engine.consolidation.job import ConsolidationJob, resolve_model_path
    from looper_engine.consolidation.train import TrainConfig
    from looper_engine.events import EventBus, TrainProgress
    from looper_engine.store.db import Store

    resolve_model_path(args.model)  # fail fast, before opening anything
    overrides = {
        k: v
        for k, v in {
            "iters": args.iters,
            "rank": args.rank,
            "learning_rate": args.lr,
            "batch_size": args.batch_size,
            "num_layers": args.layers,
            "fine_tune_type": "full" if args.full else None,
        }.items()
        if v is not None
    }
    try:
        config = TrainConfig(**overrides)
    except Exception as exc:
        raise UserError(f"bad training setting: {str(exc).splitlines()[-1].strip()}") from exc
    dataset = _read_data_dir(Path(args.data)) if args.data else None
    console = Console()

    async def go() -> int:
        store = await Store.open(_db(args), create=args.data is not None)
        bus = EventBus()
        sub = bus.subscribe(kinds=("train_progress",))
        try:
            job = ConsolidationJob(
                store, bus, model=args.model, strategy=args.strategy, train_config=config,
                adapters_dir=Path(args.adapters), selection=_selection(args), dataset=dataset,
                parent_adapter=args.parent,
            )
            data = await job.prepare()
            _print_stats(console, data.stats)
            with Progress(
                TextColumn("[bold]training"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[loss]}"), TimeRemainingColumn(), console=console,
            ) as progress:
                bar = progress.add_task("train", total=config.iters, loss="")
                run = asyncio.create_task(job.run())
                while not run.done():
                    await asyncio.wait([run], timeout=0.2)
                    for ev in sub.drain():
                        if isinstance(ev, TrainProgress):
                            loss = f"train {ev.train_loss:.3f}" if ev.train_loss is not None else ""
                            if ev.val_loss is not None:
                                loss += f" val {ev.val_loss:.3f}"
                            progress.update(bar, completed=ev.iteration, loss=loss)
                record = run.result()
        finally:
            sub.close()
            await store.close()
        if record is None:
            console.print("training cancelled; no adapter written")
            return 1
        console.print(f"adapter {record.id} at {record.path} (strategy {record.strategy})")
        console.print(f"use it: looper run --model mlx:{resolve_model_path(args.model)}@{record.id}")
        return 0

    return asyncio.run(go())


def cmd_adapters(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from looper_engine.cli.tables import print_table
    from looper_engine.consolidation.registry import list_adapters
    from looper_engine.store.db import Store

    async def go() -> int:
        store = await Store.open(_db(args), create=False)
        try:
            records = await list_adapters(store)
        finally:
            await store.close()
        table = Table(header_style="bold")
        for col in ("adapter", "parent", "strategy", "base model", "samples", "val loss", "path"):
            table.add_column(col)
        for r in records:
            table.add_row(
                r.id, r.parent_id or "", r.strategy, Path(r.base_model).name,
                str(r.data_stats.get("samples", "")),
                f"{r.metrics['final_val_loss']:.3f}" if r.metrics.get("final_val_loss") is not None else "",
                r.path,
            )
        print_table(Console(), table)
        return 0

    return asyncio.run(go())
