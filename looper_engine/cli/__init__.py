"""`looper ...`: the headless command line. `looper` alone opens the TUI.

User errors (a bad flag, a missing database, an unknown task or model spec) print one line
and exit with code 2. Nothing here is needed to use the engine from Python."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

from looper_engine.errors import UserError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One clear line, exit code 2, as for every other bad input.
        raise UserError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    from looper_engine.cli import commands

    parser = _Parser(prog="looper", description="Looper: a lab for coding agents that learn on the job.")
    parser.add_argument("--theme", help="TUI theme (looper-dark, looper-light, or a file in themes/)")
    parser.add_argument("--db", default=None, help="SQLite database (default ./looper.db)")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    commands.add_commands(sub)
    for module in _optional_command_modules():
        module.add_commands(sub)
    return parser


def _optional_command_modules() -> list:
    """Areas that register their own subcommands."""
    import importlib

    mods = []
    for name in (
        "looper_engine.models.commands",
        "looper_engine.consolidation.commands",
        "looper_engine.evaluation.commands",
        "looper_engine.runtime.doctor",
    ):
        try:
            mods.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return mods


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        # The real command line: give mlx a fast BLAS before anything imports it (this
        # re-executes the process once when an OpenBLAS is installed).
        from looper_engine.runtime.blas import preload_fast_blas

        preload_fast_blas()
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(args_list)
        func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
        if func is None:
            return _open_tui(args)
        return int(func(args) or 0)
    except UserError as exc:
        print(f"looper: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("looper: interrupted", file=sys.stderr)
        return 130


def _open_tui(args: argparse.Namespace) -> int:
    try:
        from looper_tui.app import run_app
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("looper_tui"):
            # The TUI is not installed: run the main job headless.
            from looper_engine.cli.commands import cmd_run, run_defaults

            return cmd_run(run_defaults(args))
        raise
    return int(run_app(args) or 0)


def run_async(coro) -> int:  # noqa: ANN001
    return asyncio.run(coro)


if __name__ == "__main__":
    raise SystemExit(main())
