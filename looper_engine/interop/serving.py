"""Serving exported adapters: vLLM's LoRA flags and an Ollama Modelfile.

vLLM serves many LoRA adapters over one base model (`--enable-lora --lora-modules
NAME=PATH ...`) and picks one per request by the request's `model` field, which the
`openai:MODEL@URL#NAME` spec sets. Ollama builds a model from a `Modelfile` whose `FROM` is
the base and whose `ADAPTER` is a safetensors adapter folder in PEFT's layout.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from looper_engine.errors import UserError
from looper_engine.models.spec import ADAPTER_NAME


def check_adapter_name(name: str) -> str:
    if not ADAPTER_NAME.match(name):
        raise UserError(
            f"adapter name {name!r} must be letters, digits, '.', '_' or '-' (it becomes a served model id)"
        )
    return name


def vllm_flags(base_model: str, modules: list[tuple[str, Path]], *, max_lora_rank: int) -> list[str]:
    """`vllm serve` argv for the base model with these named PEFT adapter folders."""
    if not modules:
        raise UserError("name at least one adapter to serve")
    names = [check_adapter_name(n) for n, _ in modules]
    if len(set(names)) != len(names):
        raise UserError(f"two adapters share a name: {', '.join(sorted(n for n in names if names.count(n) > 1))}")
    argv = ["vllm", "serve", base_model, "--enable-lora", "--max-lora-rank", str(_vllm_rank(max_lora_rank)),
            "--max-loras", str(len(modules)), "--lora-modules"]
    argv += [f"{n}={Path(p).resolve()}" for n, p in modules]
    return argv


def _vllm_rank(rank: int) -> int:
    # vLLM accepts only these values for --max-lora-rank.
    for allowed in (8, 16, 32, 64, 128, 256, 320, 512):
        if rank <= allowed:
            return allowed
    raise UserError(f"LoRA rank {rank} is above what vLLM serves (512)")


def shell_line(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def modelfile(base: str, adapter_dir: str, *, system: str | None = None) -> str:
    """An Ollama Modelfile: FROM the base model (a name Ollama has, or a safetensors model
    folder such as `looper model export-hf` writes), ADAPTER the PEFT adapter folder."""
    lines = [f"FROM {base}", f"ADAPTER {adapter_dir}"]
    if system:
        lines.append(f'SYSTEM """{system}"""')
    return "\n".join(lines) + "\n"


def ollama_commands(name: str, modelfile_path: Path) -> list[str]:
    return [
        shell_line(["ollama", "create", check_adapter_name(name), "-f", str(modelfile_path)]),
        shell_line(["ollama", "run", name]),
    ]
