"""Full fine-tuning: the model's own weights trained by mlx-lm's trainer, stored as an
adapter folder in mlx-lm's full layout, loaded by mlx-lm and by `mlx:PATH@ADAPTER`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlx_lm
import pytest

from looper_engine.chat import Message
from looper_engine.consolidation.adapter_files import (
    load_adapter_weights,
    read_adapter_config,
    verify_adapter_loads,
)
from looper_engine.consolidation.train import TrainConfig, TrainResult, train_adapter
from looper_engine.errors import UserError
from looper_engine.models import create_backend
from looper_engine.models.base import GenOptions

FULL = TrainConfig(fine_tune_type="full", learning_rate=1e-3, iters=12, steps_per_eval=12, save_every=12)
GREEDY = GenOptions(temperature=0.0, max_tokens=12)


@pytest.fixture(scope="module")
def full(tiny_model: Path, rows: list, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train_adapter(tiny_model, rows, rows, tmp_path_factory.mktemp("full") / "adapter", FULL)


def reference(model_path: Path, adapter: Path | None, messages: list[dict[str, Any]]) -> str:
    model, tok = mlx_lm.load(str(model_path), adapter_path=str(adapter) if adapter else None)
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True)
    return mlx_lm.generate(model, tok, prompt, max_tokens=GREEDY.max_tokens)


def test_full_fine_tuning_trains_every_weight_and_mlx_lm_loads_it(
    full: TrainResult, tiny_model: Path
) -> None:
    assert full.status == "finished"
    vals = [p.val_loss for p in full.curve if p.val_loss is not None]
    assert vals[-1] < vals[0] / 2
    cfg = read_adapter_config(full.adapter_dir)
    assert cfg.fine_tune_type == "full"
    weights = load_adapter_weights(full.adapter_dir)
    assert "model.embed_tokens.weight" in weights and "model.layers.1.mlp.down_proj.weight" in weights
    assert not any(k.endswith(("lora_a", "lora_b")) for k in weights)
    verify_adapter_loads(tiny_model, full.adapter_dir)


def test_last_layers_only_when_num_layers_is_given(tiny_model: Path, rows: list, tmp_path: Path) -> None:
    cfg = FULL.model_copy(update={"num_layers": 1, "iters": 2})
    result = train_adapter(tiny_model, rows, [], tmp_path / "last", cfg)
    names = set(load_adapter_weights(result.adapter_dir))
    assert names and all(n.startswith("model.layers.1.") for n in names)


def test_a_full_fine_tune_cannot_continue_a_lora_adapter(
    full: TrainResult, tiny_model: Path, rows: list, tmp_path: Path
) -> None:
    lora = train_adapter(tiny_model, rows, [], tmp_path / "lora", TrainConfig(iters=1))
    with pytest.raises(UserError, match="is a lora fine-tune; this run asks for full"):
        train_adapter(tiny_model, rows, [], tmp_path / "x", FULL, init_adapter=lora.adapter_dir)
    with pytest.raises(UserError, match="is a full fine-tune; this run asks for lora"):
        train_adapter(
            tiny_model, rows, [], tmp_path / "y", TrainConfig(iters=1), init_adapter=full.adapter_dir
        )


async def test_the_mlx_backend_runs_a_full_fine_tune_and_swaps_back_to_the_base(
    full: TrainResult, tiny_model: Path, rows: list, tmp_path: Path
) -> None:
    row = rows[0]["messages"][:-1]
    messages = [Message(role=m["role"], content=m["content"]) for m in row]
    lora = train_adapter(tiny_model, rows, [], tmp_path / "lora", TrainConfig(iters=3))
    backend = create_backend(f"mlx:{tiny_model}@{full.adapter_dir}")

    async def text() -> str:
        return "".join([d async for d in backend.stream(messages, GREEDY)])

    tuned = await text()
    assert tuned == reference(tiny_model, full.adapter_dir, row)
    assert tuned.startswith("<bash>")  # the random-weight base never writes a tool call
    await backend.load_adapter(None)
    base = await text()
    assert base == reference(tiny_model, None, row) and not base.startswith("<bash>")
    await backend.load_adapter(lora.adapter_dir)  # a LoRA on the restored base weights
    assert await text() == reference(tiny_model, lora.adapter_dir, row)
    await backend.load_adapter(full.adapter_dir)
    assert await text() == tuned
    await backend.aclose()


def test_looper_train_full_registers_a_full_fine_tune(tiny_model: Path, rows: list, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    data = tmp_path / "data"
    data.mkdir()
    for name, part in (("train", rows[:12]), ("valid", rows[12:])):
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    cmd = [
        sys.executable,
        "-m",
        "looper_engine.cli",
        "train",
        "--model",
        f"mlx:{tiny_model}",
        "--data",
        str(data),
        "--db",
        str(tmp_path / "lab.db"),
        "--adapters",
        str(tmp_path / "adapters"),
        "--full",
        "--iters",
        "2",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (adapter,) = (tmp_path / "adapters").iterdir()
    assert read_adapter_config(adapter).fine_tune_type == "full"
    verify_adapter_loads(tiny_model, adapter)
