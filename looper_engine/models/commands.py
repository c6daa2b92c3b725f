"""`looper models` (what an Ollama server has) and `looper model init-tiny PATH`."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

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
