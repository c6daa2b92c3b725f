"""An mlx-lm model folder as a Hugging Face `transformers` model folder.

For the llama family (llama, mistral, qwen2, qwen3) mlx-lm keeps Hugging Face's own tensor
names, so the export is the same tensors with PyTorch's safetensors metadata, the config
without mlx-only keys, and the tokenizer files as they are. Quantized folders are refused:
their packed integer tensors mean nothing to `transformers`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from looper_engine.errors import UserError

#: Model types whose mlx-lm parameter names are transformers' names.
SAME_NAMES = frozenset({"llama", "mistral", "qwen2", "qwen3"})
_MLX_ONLY_KEYS = ("quantization", "quantization_config")
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "generation_config.json",
)


def export_hf(model_dir: Path, out: Path) -> Path:
    """Write `out/config.json`, the weights (`model.safetensors` or the same shards and
    index) and the tokenizer files. UserError for a folder that is not a plain llama-family
    mlx-lm model, or an `out` that already holds a model."""
    import mlx.core as mx

    model_dir, out = Path(model_dir), Path(out)
    cfg_path = model_dir / "config.json"
    if not cfg_path.is_file():
        raise UserError(f"{model_dir} is not a model folder: config.json is missing")
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {cfg_path}: {exc}") from None
    if any(k in config for k in _MLX_ONLY_KEYS):
        raise UserError(f"{model_dir} is quantized; export a model that is not (mlx_lm.convert without -q)")
    model_type = str(config.get("model_type", ""))
    if model_type not in SAME_NAMES:
        raise UserError(
            f"{model_dir} is a {model_type or 'unknown'} model; export-hf takes {', '.join(sorted(SAME_NAMES))}"
        )
    shards = sorted(model_dir.glob("model*.safetensors"))
    if not shards:
        raise UserError(f"{model_dir} holds no model*.safetensors weights")
    if (out / "config.json").exists():
        raise UserError(f"{out} already holds a model; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    try:
        for shard in shards:
            weights = mx.load(str(shard))
            if any(k.endswith((".scales", ".biases")) and k[: -len(".scales")] + ".weight" in weights
                   for k in weights):
                raise UserError(f"{shard} holds quantized tensors; export a model that is not quantized")
            mx.save_safetensors(str(out / shard.name), weights, metadata={"format": "pt"})
        index = model_dir / "model.safetensors.index.json"
        if index.is_file():
            shutil.copyfile(index, out / index.name)
        for name in _TOKENIZER_FILES:
            if (model_dir / name).is_file():
                shutil.copyfile(model_dir / name, out / name)
        config.setdefault("architectures", [_ARCH[model_type]])
        (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write the model in {out}: {exc}") from exc
    return out


_ARCH = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
}
