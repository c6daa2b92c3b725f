"""The interop subcommands: `looper adapters export|serve-config`, `looper model export-hf`,
`looper export --format mini-swe-agent|swebench` and `looper import mini-swe-agent`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from looper_engine.errors import UserError


def add_adapter_commands(adapters: argparse.ArgumentParser) -> None:
    """Subcommands of `looper adapters` (which, alone, lists the registry)."""
    sub = adapters.add_subparsers(dest="adapters_command", metavar="COMMAND")
    p = sub.add_parser("export", help="write an adapter in PEFT's layout (or an Ollama Modelfile beside it)")
    p.add_argument("adapter", help="adapter id (under --adapters) or folder")
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--format", choices=("peft", "ollama"), default="peft")
    p.add_argument("--adapters", default="adapters", help="adapter folder (default adapters/)")
    p.add_argument("--base", default=None,
                   help="base model to name: the PEFT base_model_name_or_path, the Modelfile's FROM "
                        "(default: the base model the adapter records)")
    p.add_argument("--name", default=None, help="the Ollama model name (default: the adapter id)")
    p.set_defaults(func=cmd_adapters_export)

    p = sub.add_parser("serve-config", help="print the vLLM flags that serve these exported adapters")
    p.add_argument("adapters_ids", nargs="+", metavar="ID[=PEFT_DIR]",
                   help="adapter id or folder; =PEFT_DIR uses an export made before, else one is made")
    p.add_argument("--adapters", default="adapters", help="adapter folder (default adapters/)")
    p.add_argument("--base", default=None, help="the model vLLM serves as base (default: the recorded base)")
    p.add_argument("--out", type=Path, default=Path("exports"),
                   help="where the PEFT exports go (default exports/<id>-peft)")
    p.set_defaults(func=cmd_serve_config)


def add_model_commands(msub: argparse._SubParsersAction) -> None:
    p = msub.add_parser("export-hf", help="write an MLX model folder as a Hugging Face transformers folder")
    p.add_argument("path", type=Path, help="the MLX model folder (not quantized; llama family)")
    p.add_argument("out", type=Path, help="output folder")
    p.set_defaults(func=cmd_export_hf)


def _adapter(args: argparse.Namespace, ref: str) -> tuple[str, Path]:
    from looper_engine.models.mlx_backend import resolve_adapter

    path = resolve_adapter(ref, args.adapters)
    return path.name, path


def _recorded_base(adapter_dir: Path) -> str:
    from looper_engine.consolidation.adapter_files import read_adapter_config

    cfg = read_adapter_config(adapter_dir)
    return str(cfg.model or cfg.looper.get("base_model") or "")


def cmd_adapters_export(args: argparse.Namespace) -> int:
    from looper_engine.interop.peft import export_peft
    from looper_engine.interop.serving import modelfile, ollama_commands

    adapter_id, path = _adapter(args, args.adapter)
    base = args.base or _recorded_base(path)
    if args.format == "peft":
        export_peft(path, args.out, base_model=base)
        print(f"PEFT adapter {adapter_id} in {args.out} (adapter_config.json, adapter_model.safetensors)")
        print(f"load it: PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained({base!r}), {str(args.out)!r})")
        return 0
    if not base:
        raise UserError("the adapter records no base model; pass --base (an Ollama model or an export-hf folder)")
    out = Path(args.out)
    if (out / "Modelfile").exists():
        raise UserError(f"{out} already holds a Modelfile; choose a new folder")
    export_peft(path, out / "adapter", base_model=base)
    text = modelfile(base, str((out / "adapter").resolve()))
    (out / "Modelfile").write_text(text)
    print(f"Ollama Modelfile for {adapter_id} in {out / 'Modelfile'}:")
    print(text, end="")
    print("FROM must be the weights the adapter was trained on: an Ollama model of that base, "
          "or a folder from `looper model export-hf`.")
    print("create and run it:")
    for line in ollama_commands(args.name or adapter_id, out / "Modelfile"):
        print(f"  {line}")
    return 0


def cmd_serve_config(args: argparse.Namespace) -> int:
    from looper_engine.consolidation.adapter_files import read_adapter_config
    from looper_engine.interop.peft import PEFT_CONFIG, export_peft
    from looper_engine.interop.serving import shell_line, vllm_flags

    modules: list[tuple[str, Path]] = []
    bases: set[str] = set()
    rank = 1
    for ref in args.adapters_ids:
        ref, _, given = ref.partition("=")
        adapter_id, path = _adapter(args, ref)
        cfg = read_adapter_config(path)
        rank = max(rank, cfg.lora_parameters.rank)
        bases.add(_recorded_base(path))
        peft_dir = Path(given) if given else Path(args.out) / f"{adapter_id}-peft"
        if not (peft_dir / PEFT_CONFIG).is_file():
            export_peft(path, peft_dir, base_model=args.base or _recorded_base(path))
        modules.append((adapter_id, peft_dir))
    if args.base is None and len(bases) != 1:
        raise UserError(f"the adapters have different base models ({', '.join(sorted(bases))}); vLLM serves one")
    base = args.base or bases.pop()
    print(shell_line(vllm_flags(base, modules, max_lora_rank=rank)))
    for name, _ in modules:
        print(f"# run an arm on it: --model openai:{base}@http://HOST:8000/v1#{name}")
    return 0


def cmd_export_hf(args: argparse.Namespace) -> int:
    from looper_engine.interop.hf import export_hf

    out = export_hf(args.path, args.out)
    print(f"transformers model in {out}: AutoModelForCausalLM.from_pretrained({str(out)!r})")
    return 0


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def add_import_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="record other agents' trajectories as Looper episodes")
    isub = p.add_subparsers(dest="import_format", metavar="FORMAT", required=True)
    m = isub.add_parser("mini-swe-agent", help="mini-swe-agent .traj.json files (a folder, searched recursively)")
    m.add_argument("path", type=Path, help="a folder of trajectories or one file")
    m.add_argument("--db", dest="db_sub", default=None, help="SQLite database (default ./looper.db)")
    m.add_argument("--resolved", action="append", default=[], metavar="INSTANCE",
                   help="an instance the SWE-bench harness resolved (repeatable)")
    m.add_argument("--report", type=Path, default=None,
                   help="the SWE-bench harness's report JSON: its resolved_ids are marked resolved")
    m.add_argument("--all-resolved", action="store_true", help="mark every imported episode resolved")
    m.set_defaults(func=cmd_import_mini_swe_agent)


def _resolved_ids(args: argparse.Namespace) -> set[str]:
    ids = set(args.resolved)
    if args.report is not None:
        try:
            report = json.loads(Path(args.report).read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read the report {args.report}: {exc}") from None
        found = report.get("resolved_ids", report.get("resolved")) if isinstance(report, dict) else None
        if not isinstance(found, list):
            raise UserError(f"{args.report} has no resolved_ids list (a SWE-bench harness report has one)")
        ids |= {str(x) for x in found}
    return ids


def cmd_import_mini_swe_agent(args: argparse.Namespace) -> int:
    import asyncio

    from looper_engine.interop.miniswe import import_trajectories
    from looper_engine.store.db import DEFAULT_DB, Store

    resolved = _resolved_ids(args)

    async def go() -> int:
        store = await Store.open(Path(args.db_sub or getattr(args, "db", None) or DEFAULT_DB))
        try:
            run_id, episodes = await import_trajectories(
                store, args.path, resolved_ids=resolved, all_resolved=args.all_resolved
            )
        finally:
            await store.close()
        n_resolved = sum(1 for im in episodes if im.events[-1].resolved)  # type: ignore[attr-defined]
        print(f"imported {len(episodes)} mini-swe-agent trajectories as run {run_id} "
              f"({sum(im.steps for im in episodes)} steps, {n_resolved} marked resolved)")
        print(f"step through them: looper show --list, or `looper` (history); "
              f"train on them: looper synth --run {run_id} --out data/"
              + ("" if n_resolved else " --include-unresolved"))
        return 0

    return asyncio.run(go())


def cmd_export_format(args: argparse.Namespace, db: Path) -> int:
    """`looper export --format mini-swe-agent|swebench`."""
    import asyncio
    import sys

    from looper_engine.interop.miniswe import export_mini_swe_agent
    from looper_engine.store.db import Store
    from looper_engine.store.export import export_swebench

    if args.out == "-" and args.format == "mini-swe-agent":
        raise UserError("--format mini-swe-agent writes one file per episode: pass --out DIR")

    async def go() -> int:
        store = await Store.open(db, create=False)
        try:
            if args.format == "mini-swe-agent":
                files = await export_mini_swe_agent(store, Path(args.out), run_id=args.run, resolved_only=args.resolved)
                print(f"exported {len(files)} episodes to {args.out} as mini-swe-agent trajectories", file=sys.stderr)
                return 0
            out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
            try:
                result = await export_swebench(store, out, run_id=args.run, resolved_only=args.resolved)
            finally:
                if out is not sys.stdout:
                    out.close()
        finally:
            await store.close()
        print(f"wrote {result.written} SWE-bench predictions to {args.out}", file=sys.stderr)
        if result.without_patch:
            print(f"skipped {len(result.without_patch)} episodes recorded without a workspace diff", file=sys.stderr)
        if result.repeated:
            print(f"{len(set(result.repeated))} instances appear more than once; the harness keeps the last "
                  "(the newest): narrow with --run", file=sys.stderr)
        return 0

    return asyncio.run(go())
