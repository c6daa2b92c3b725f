"""The `looper` command: the one place that puts the engine's command line and the lab
together. Subcommands are the engine's (`looper run`, `looper show`, ...) and never import
textual; `looper` alone opens the lab."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from looper_engine.cli import main as cli_main
from looper_engine.cli import run_headless_demo


def open_lab(args: argparse.Namespace) -> int:
    try:
        from looper_tui.app import run_app
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "textual":
            raise
        print("looper: the lab needs textual, which is not installed; running the demo headless", file=sys.stderr)
        return run_headless_demo(args)
    return run_app(args)


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(argv, open_lab=open_lab)


if __name__ == "__main__":
    raise SystemExit(main())
