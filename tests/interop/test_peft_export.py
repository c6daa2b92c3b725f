"""An adapter trained by Looper gives the same logits under PEFT on the exported base."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from looper_engine.cli import main

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
pytest.importorskip("mlx_lm")

PROMPT = [{"role": "user", "content": "Run the tests of tests/test_math.py"}]


def mlx_logits(model_dir: Path, adapter: Path | None) -> tuple[np.ndarray, list[int]]:
    import mlx.core as mx
    import mlx_lm

    model, tok = mlx_lm.load(str(model_dir), adapter_path=str(adapter) if adapter else None)
    ids = tok.apply_chat_template(PROMPT, add_generation_prompt=True)
    logits = model(mx.array([ids]))
    return np.array(logits.astype(mx.float32))[0], list(ids)


def torch_logits(model: object, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()  # type: ignore[operator]


@pytest.fixture(scope="module")
def exported(tiny_model: Path, trained_adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("exported")
    assert main(["model", "export-hf", str(tiny_model), str(out / "hf")]) == 0
    assert main(["adapters", "export", str(trained_adapter), str(out / "peft"), "--format", "peft"]) == 0
    return {"hf": out / "hf", "peft": out / "peft"}


def test_peft_layout_names_shapes_and_alpha(exported: dict, trained_adapter: Path) -> None:
    from safetensors.numpy import load_file

    cfg = json.loads((exported["peft"] / "adapter_config.json").read_text())
    mlx_cfg = json.loads((trained_adapter / "adapter_config.json").read_text())
    rank, scale = mlx_cfg["lora_parameters"]["rank"], mlx_cfg["lora_parameters"]["scale"]
    assert cfg["peft_type"] == "LORA" and cfg["r"] == rank and cfg["lora_alpha"] == scale * rank
    assert cfg["layers_to_transform"] == [1]  # num_layers=1 adapts the top block of two
    assert set(cfg["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert cfg["base_model_name_or_path"]
    ours = load_file(str(exported["peft"] / "adapter_model.safetensors"))
    theirs = load_file(str(trained_adapter / "adapters.safetensors"))
    a = theirs["model.layers.1.self_attn.q_proj.lora_a"]
    assert np.array_equal(ours["base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"], a.T)
    assert ours["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"].shape == (128, rank)
    assert len(ours) == len(theirs)


def test_same_logits_from_mlx_lm_and_peft(tiny_model: Path, trained_adapter: Path, exported: dict) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base_mlx, ids = mlx_logits(tiny_model, None)
    adapted_mlx, _ = mlx_logits(tiny_model, trained_adapter)
    # The trained update is far from nothing, so agreement below says something.
    assert np.abs(adapted_mlx - base_mlx).max() > 0.05

    base = AutoModelForCausalLM.from_pretrained(str(exported["hf"]), dtype=torch.float32)
    base.eval()
    np.testing.assert_allclose(torch_logits(base, ids), base_mlx, atol=1e-3, rtol=0)
    adapted = PeftModel.from_pretrained(base, str(exported["peft"]))
    adapted.eval()
    np.testing.assert_allclose(torch_logits(adapted, ids), adapted_mlx, atol=1e-3, rtol=0)


def test_export_refuses_a_quantized_model_and_an_occupied_folder(
    tiny_model: Path, exported: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quantized = tmp_path / "q"
    quantized.mkdir()
    cfg = json.loads((tiny_model / "config.json").read_text())
    (quantized / "config.json").write_text(json.dumps({**cfg, "quantization": {"bits": 4, "group_size": 64}}))
    assert main(["model", "export-hf", str(quantized), str(tmp_path / "out")]) == 2
    assert "quantized" in capsys.readouterr().err
    assert main(["model", "export-hf", str(tiny_model), str(exported["hf"])]) == 2
    assert "already holds a model" in capsys.readouterr().err
