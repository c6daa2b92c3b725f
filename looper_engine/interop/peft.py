"""An mlx-lm LoRA adapter in PEFT's layout.

mlx-lm's `LoRALinear` computes `y = W x + scale * (x @ lora_a) @ lora_b` with `lora_a` of
shape (in, r) and `lora_b` of shape (r, out). PEFT's `lora.Linear` computes
`y = W x + (alpha / r) * lora_B(lora_A(x))` with `lora_A.weight` (r, in) and
`lora_B.weight` (out, r). So the tensors are transposed and `lora_alpha = scale * r`, which
makes the update identical. Module names get PEFT's `base_model.model.` prefix.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from looper_engine.consolidation.adapter_files import (
    AdapterConfig,
    load_adapter_weights,
    read_adapter_config,
)
from looper_engine.errors import UserError

PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."

_LAYER = re.compile(r"^(?P<stem>.*\.layers)\.(?P<index>\d+)\.(?P<rest>.+)$")


def _modules(weights: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{module name: (lora_a, lora_b)} of an mlx-lm adapter; UserError for anything PEFT's
    plain LoRA cannot hold (DoRA magnitudes, mixture-of-experts stacks, stray tensors)."""
    pairs: dict[str, dict[str, Any]] = {}
    for key, value in weights.items():
        module, _, leaf = key.rpartition(".")
        if leaf not in ("lora_a", "lora_b"):
            raise UserError(f"adapter tensor {key!r} is not a LoRA A/B matrix; only plain LoRA exports to PEFT")
        if value.ndim != 2:
            raise UserError(
                f"adapter tensor {key!r} has {value.ndim} dimensions (a mixture-of-experts layer?); "
                "PEFT export takes linear layers only"
            )
        pairs.setdefault(module, {})[leaf] = value
    out = {}
    for module, ab in sorted(pairs.items()):
        if set(ab) != {"lora_a", "lora_b"}:
            raise UserError(f"adapter module {module!r} lacks one of lora_a / lora_b")
        if module.split(".")[-1] in ("embed_tokens", "lm_head"):
            raise UserError(f"adapter module {module!r} is an embedding; PEFT export takes linear layers only")
        out[module] = (ab["lora_a"], ab["lora_b"])
    if not out:
        raise UserError("the adapter holds no LoRA tensors")
    return out


def _targets(modules: list[str]) -> dict[str, Any]:
    """PEFT's `target_modules` (leaf names, which vLLM checks against what it supports) and,
    when only some blocks are adapted, `layers_to_transform`. When the adapted modules are
    not every leaf in every listed block, a regex that names exactly these modules."""
    leaves = sorted({m.split(".")[-1] for m in modules})
    layers: set[int] = set()
    stems: set[str] = set()
    for m in modules:
        match = _LAYER.match(m)
        if match is None:
            return {"target_modules": "^(" + "|".join(re.escape(x) for x in modules) + ")$"}
        layers.add(int(match["index"]))
        stems.add(match["stem"].split(".")[-1])
    by_layer_leaf = {(int(_LAYER.match(m)["index"]), m.split(".")[-1]) for m in modules}  # type: ignore[index]
    exact_product = len(by_layer_leaf) == len(modules) and by_layer_leaf == {
        (i, leaf) for i in layers for leaf in leaves
    }
    if not exact_product or len(stems) != 1:
        return {"target_modules": "^(" + "|".join(re.escape(x) for x in modules) + ")$"}
    return {
        "target_modules": leaves,
        "layers_to_transform": sorted(layers),
        "layers_pattern": stems.pop(),
    }


def peft_config(config: AdapterConfig, modules: list[str], rank: int, base_model: str) -> dict[str, Any]:
    params = config.lora_parameters
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": rank,
        "lora_alpha": params.scale * rank,
        "lora_dropout": params.dropout,
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "init_lora_weights": True,
        "inference_mode": True,
        "modules_to_save": None,
        **_targets(modules),
    }


def export_peft(adapter_dir: Path, out: Path, *, base_model: str | None = None) -> Path:
    """Write `out/adapter_config.json` and `out/adapter_model.safetensors` for PEFT (and vLLM
    and Ollama, which read the same layout). `base_model` defaults to the base model the
    adapter records. Refuses an `out` that already holds an adapter."""
    import mlx.core as mx

    adapter_dir, out = Path(adapter_dir), Path(out)
    config = read_adapter_config(adapter_dir)
    if config.fine_tune_type != "lora":
        raise UserError(f"{adapter_dir} is a {config.fine_tune_type} adapter; PEFT export takes plain LoRA only")
    modules = _modules(load_adapter_weights(adapter_dir))
    rank = config.lora_parameters.rank
    tensors: dict[str, Any] = {}
    for name, (a, b) in modules.items():
        if a.shape[1] != rank or b.shape[0] != rank:
            raise UserError(f"adapter module {name!r} has rank {a.shape[1]}, its config says {rank}")
        tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"] = mx.contiguous(a.T)
        tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"] = mx.contiguous(b.T)
    base = base_model or config.model or str(config.looper.get("base_model") or "")
    if out.exists() and not out.is_dir():
        raise UserError(f"cannot export to {out}: it is a file")
    if (out / PEFT_CONFIG).exists() or (out / PEFT_WEIGHTS).exists():
        raise UserError(f"{out} already holds an adapter; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    try:
        mx.save_safetensors(str(out / PEFT_WEIGHTS), tensors, metadata={"format": "pt"})
        text = json.dumps(peft_config(config, list(modules), rank, base), indent=2) + "\n"
        (out / PEFT_CONFIG).write_text(text)
    except (OSError, RuntimeError) as exc:
        raise UserError(f"cannot write the PEFT adapter in {out}: {exc}") from exc
    return out
