"""The core subcommands: run, show, tasks, export."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from looper_engine.config import FRAMEWORK_SWITCHES, AgentConfig
from looper_engine.errors import UserError
from looper_engine.sandbox import SANDBOX_MODES, resolve_mode
from looper_engine.store.db import DEFAULT_DB

DEFAULT_MODEL = "scripted:oracle"


def _db_path(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "db_sub", None) or getattr(args, "db", None) or DEFAULT_DB)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a suite of tasks headless with a live progress view")
    p.add_argument("--suite", default="koans", help="task suite (default: koans)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model spec (default: scripted:oracle)")
    p.add_argument("--tasks", action="append", default=None, metavar="GLOB", help="task ids to run (globs; repeatable)")
    p.add_argument("--concurrency", type=int, default=2, help="episodes at once (default 2)")
    p.add_argument("--db", dest="db_sub", default=None, help="SQLite database (default ./looper.db)")
    p.add_argument("--max-steps", type=int, default=None, help="tool calls per episode")
    p.add_argument("--budget", type=int, default=None, help="context token budget")
    p.add_argument("--off", action="append", default=[], choices=FRAMEWORK_SWITCHES, metavar="SWITCH",
                   help=f"turn a framework fix off (repeatable): {', '.join(FRAMEWORK_SWITCHES)}")
    p.add_argument("--rate", type=float, default=2000.0, help="tokens/s of a scripted policy (0 = unthrottled)")
    p.add_argument("--prompt-profile", choices=("standard", "compact"), default=None,
                   help="compact: a system prompt of a few dozen tokens for small models (default: standard)")
    p.add_argument("--name", default="", help="a name for the run")
    p.add_argument("--quiet", action="store_true", help="no live view, only the summary")
    p.add_argument("--sandbox", default="auto", choices=SANDBOX_MODES,
                   help="what confines the model's commands and the tests (default auto: bwrap on Linux)")
    p.add_argument("--network", action="store_true", help="let sandboxed commands use the network")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("show", help="replay a stored episode step by step")
    p.add_argument("episode", nargs="?", default=None, help="episode id (or a unique prefix); default: the newest")
    p.add_argument("--db", dest="db_sub", default=None)
    p.add_argument("--list", action="store_true", help="list recent episodes instead")
    p.add_argument("--context", action="store_true", help="also print the context the model saw at each step")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("tasks", help="list task ids, one per line")
    p.add_argument("--suite", default="koans", help="task suite: koans, world, world:SEED or world:SEED:N")
    p.add_argument("--long", action="store_true", help="with family, difficulty and statement")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("export", help="export episodes to JSONL (one episode per line)")
    p.add_argument("--db", dest="db_sub", default=None)
    p.add_argument("--out", default="-", help="output file (default: stdout)")
    p.add_argument("--run", default=None, help="only this run's episodes")
    p.add_argument("--resolved", action="store_true", help="only resolved episodes")
    p.add_argument("--format", default="jsonl", choices=("jsonl", "mini-swe-agent", "swebench"),
                   help="jsonl (default); mini-swe-agent: one .traj.json per episode in --out DIR; "
                        "swebench: SWE-bench predictions (JSONL) of the SWE-Bench-CL episodes")
    p.set_defaults(func=cmd_export)

    from looper_engine.interop.commands import add_import_commands

    add_import_commands(sub)


def run_defaults(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(
        suite="koans",
        model=DEFAULT_MODEL,
        tasks=None,
        concurrency=2,
        db_sub=getattr(args, "db", None),
        max_steps=None,
        budget=None,
        off=[],
        rate=2000.0,
        name="",
        quiet=False,
        sandbox="auto",
        network=False,
    )


def agent_config_from_args(args: argparse.Namespace) -> AgentConfig:
    overrides: dict[str, object] = {name: False for name in args.off}
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    if args.budget is not None:
        overrides["token_budget"] = args.budget
    if getattr(args, "prompt_profile", None):
        overrides["prompt_profile"] = args.prompt_profile
    overrides["sandbox"] = getattr(args, "sandbox", "auto")
    overrides["network"] = getattr(args, "network", False)
    try:
        return AgentConfig(**overrides)
    except Exception as exc:  # pydantic ValidationError
        raise UserError(f"bad agent setting: {str(exc).splitlines()[-1].strip()}") from exc


def cmd_run(args: argparse.Namespace) -> int:
    from looper_engine.cli.live import run_headless
    from looper_engine.models.registry import create_backend
    from looper_engine.tasks.suites import load_suite, select_tasks

    if args.concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    config = agent_config_from_args(args)
    resolve_mode(config.sandbox)  # a sandbox that cannot start stops the run before anything runs
    tasks = select_tasks(load_suite(args.suite), args.tasks)
    backend = create_backend(args.model, rate=args.rate)
    return asyncio.run(run_headless(tasks, backend, config, args, _db_path(args)))


def cmd_show(args: argparse.Namespace) -> int:
    from looper_engine.cli.show import show

    return asyncio.run(show(_db_path(args), args.episode, list_only=args.list, with_context=args.context))


def cmd_tasks(args: argparse.Namespace) -> int:
    from looper_engine.tasks.suites import load_suite

    for task in load_suite(args.suite):
        if args.long:
            print(f"{task.id}\t{task.family}\t{task.difficulty}\t{task.statement.splitlines()[0][:80]}")
        else:
            print(task.id)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from looper_engine.store.export import export_jsonl

    if args.format != "jsonl":
        from looper_engine.interop.commands import cmd_export_format

        return cmd_export_format(args, _db_path(args))

    async def go() -> int:
        from looper_engine.store.db import Store

        store = await Store.open(_db_path(args), create=False)
        try:
            out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
            try:
                n = await export_jsonl(store, out, run_id=args.run, resolved_only=args.resolved)
            finally:
                if out is not sys.stdout:
                    out.close()
        finally:
            await store.close()
        if args.out != "-":
            print(f"exported {n} episodes to {args.out}", file=sys.stderr)
        return 0

    return asyncio.run(go())


def dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)
