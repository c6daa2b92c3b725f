"""`looper models` (what an Ollama server has) and `looper model init-tiny PATH`."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from looper_engine.errors import UserError


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list the models an Ollama server has pulled")
    p.add_argument("--host", default=None, help="Ollama URL (default: OLLAMA_HOST or http://127.0.0.1:11434)")
    p.set_defaults(func=cmd_models)

    p = subparsers.add_parser("model", help="model utilities")
    msub = p.add_subparsers(dest="model_command", metavar="COMMAND", required=True)
    init = msub.add_parser(
        "init-tiny",
        help="build the tiny random-weight MLX model (tests and demos; its output is noise)",
    )
    init.add_argument("path", type=Path, help="folder to build it in")
    init.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    init.set_defaults(func=cmd_init_tiny)
    from looper_engine.interop.commands import add_model_commands

    add_model_commands(msub)

    pre = msub.add_parser(
        "pretrain",
        help="train the mini-lab base model from random weights on the task world's base families",
    )
    pre.add_argument("path", nargs="?", type=Path, default=Path("models/minilab"),
                     help="model folder (default models/minilab)")
    pre.add_argument("--iters", type=int, default=None, help="optimizer steps (default 1000)")
    pre.add_argument("--per-template", type=int, default=None,
                     help="oracle episodes per training template (default 200)")
    pre.add_argument("--seed", type=int, default=None, help="weight and batch-order seed (default 0)")
    pre.add_argument("--force", action="store_true", help="rebuild even when the folder holds this recipe's model")
    pre.set_defaults(func=cmd_pretrain)

    ev = msub.add_parser(
        "eval",
        help="score a mini-lab model through the real engine on new world instances, per family",
    )
    ev.add_argument("path", nargs="?", type=Path, default=Path("models/minilab"))
    ev.add_argument("--n", type=int, default=100, help="instances per base family (default 100)")
    ev.add_argument("--n-other", type=int, default=30,
                    help="instances per stream family and per held-out set (default 30)")
    ev.add_argument("--seed", type=int, default=9000, help="world seed of the evaluation instances")
    ev.add_argument("--db", dest="db_sub", default=None, help="record the episodes here (default: a scratch file)")
    ev.add_argument("--json", dest="json_out", type=Path, default=None, help="also write the table as JSON")
    ev.set_defaults(func=cmd_eval)


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def human_age(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return "?"
    now = now or datetime.now(timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    seconds = max(0, int((now - when).total_seconds()))
    for span, unit in ((86400 * 365, "year"), (86400 * 30, "month"), (86400 * 7, "week"), (86400, "day"),
                       (3600, "hour"), (60, "minute")):
        if seconds >= span:
            n = seconds // span
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"


def models_table(rows: list[dict[str, Any]], host: str) -> Any:
    from rich.table import Table

    table = Table(title=f"Ollama models on {host}", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("size", justify="right")
    table.add_column("params", justify="right")
    table.add_column("quant")
    table.add_column("modified")
    for r in rows:
        table.add_row(
            r["name"] or "?",
            human_size(r["size"]),
            r["parameter_size"] or "",
            r["quantization"] or "",
            human_age(r["modified"]),
        )
    return table


def cmd_models(args: argparse.Namespace) -> int:
    from rich.console import Console

    from looper_engine.models.ollama_backend import list_models, resolve_host

    host = resolve_host(args.host)
    rows = asyncio.run(list_models(host))
    console = Console()
    if not rows:
        console.print(f"Ollama at {host} has no models; pull one with `ollama pull qwen2.5-coder:7b`")
        return 0
    console.print(models_table(rows, host))
    console.print(f"use one as --model ollama:{rows[0]['name']}", style="dim")
    return 0


def cmd_init_tiny(args: argparse.Namespace) -> int:
    try:
        from looper_engine.models.tiny import build_tiny_model
    except ModuleNotFoundError as e:
        raise UserError(f"the tiny model needs mlx-lm ({e.name} is missing): pip install 'looper[mlx]'") from None
    try:
        path = build_tiny_model(args.path, seed=args.seed)
    except ModuleNotFoundError as e:
        raise UserError(f"the tiny model needs mlx-lm ({e.name} is missing): pip install 'looper[mlx]'") from None
    print(f"tiny model (seed {args.seed}) at {path}")
    print("its weights are random: its output is noise. Use it to exercise the stack, never to measure an agent.")
    print(f"try it: looper run --model mlx:{path}")
    return 0


def _mlx_missing(e: ModuleNotFoundError) -> UserError:
    return UserError(f"the mini-lab model needs mlx-lm ({e.name} is missing): pip install 'looper[mlx]'")


def cmd_pretrain(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    try:
        from looper_engine.consolidation.pretrain import PretrainRecipe, parameters_label, pretrain
        from looper_engine.runtime.blas import blas_info
    except ModuleNotFoundError as e:
        raise _mlx_missing(e) from None
    overrides = {k: v for k, v in (("iters", args.iters), ("per_template", args.per_template), ("seed", args.seed))
                 if v is not None}
    try:
        recipe = PretrainRecipe(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "recipe"
        raise UserError(f"bad pretraining setting: {where.replace('_', '-')}: {first['msg']}") from None
    console = Console()
    blas = blas_info()
    console.print(f"BLAS: {blas.line()}", style="dim" if blas.fast else "yellow")
    progress = Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TextColumn("{task.completed:>5.0f}/{task.total:<5.0f}"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    bars: dict[str, int] = {}

    def on_progress(p) -> None:  # noqa: ANN001 - PretrainProgress
        if p.phase in ("episodes", "train"):
            if p.phase not in bars:
                bars[p.phase] = progress.add_task(p.phase, total=max(p.total, 1), info="")
            info = ""
            if p.loss is not None:
                info = f"loss {p.loss:.3f}  {p.tokens_per_second or 0:.0f} tok/s"
            progress.update(bars[p.phase], completed=p.done, total=max(p.total, 1), info=info)
        elif p.message:
            progress.console.print(p.message, style="dim")

    try:
        with progress:
            result = pretrain(args.path, recipe, force=args.force, on_progress=on_progress)
    except ModuleNotFoundError as e:
        raise _mlx_missing(e) from None
    if result.cached:
        console.print(f"{result.path} already holds this recipe's model (recipe {result.recipe_key}, "
                      f"data {result.data_hash}); --force rebuilds it")
    else:
        console.print(
            f"mini-lab model ({parameters_label(result.parameters)} parameters, vocab {result.vocab_size}) at "
            f"{result.path}: {result.samples} samples from {result.episodes} oracle episodes, final loss "
            f"{result.final_loss:.3f}, {result.tokens_per_second or 0:.0f} tok/s, {result.seconds / 60:.1f} min"
        )
    console.print(f"score it: looper model eval {result.path}    run it: looper run --suite world --model mlx:{result.path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rich.console import Console

    try:
        from looper_engine.consolidation.minilab_eval import evaluate_model, results_table
    except ModuleNotFoundError as e:
        raise _mlx_missing(e) from None
    if args.n < 1 or args.n_other < 0:
        raise UserError("--n must be at least 1 and --n-other at least 0")
    console = Console()
    db = Path(args.db_sub) if args.db_sub else None
    report = asyncio.run(
        evaluate_model(args.path, n_base=args.n, n_other=args.n_other, seed=args.seed, db=db,
                       on_line=lambda line: console.print(line, style="dim"))
    )
    console.print(results_table(report))
    if args.json_out is not None:
        args.json_out.write_text(report.model_dump_json(indent=2))
    return 0
