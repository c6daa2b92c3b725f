from __future__ import annotations

import json
from pathlib import Path

import mlx_lm
import pytest

from looper_engine.errors import UserError
from looper_engine.models.tiny import TINY_FILES, TOOL_TAGS, build_tiny_model, is_tiny_model


def test_same_seed_builds_the_same_model_and_a_second_call_reuses_it(tmp_path: Path) -> None:
    a = build_tiny_model(tmp_path / "a", seed=3)
    b = build_tiny_model(tmp_path / "b", seed=3)
    for name in TINY_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    stamp = (a / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_model(a, seed=3) == a
    assert (a / "model.safetensors").stat().st_mtime_ns == stamp
    other = build_tiny_model(tmp_path / "c", seed=4)
    assert (other / "model.safetensors").read_bytes() != (a / "model.safetensors").read_bytes()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "temporary folders left behind"


def test_mlx_lm_loads_it_and_the_chat_template_makes_prompts_a_token_prefix(tiny_model: Path) -> None:
    model, tok = mlx_lm.load(str(tiny_model))
    config = json.loads((tiny_model / "config.json").read_text())
    assert config["looper_tiny"] is True and is_tiny_model(tiny_model)
    assert tok.eos_token_id == config["eos_token_id"]
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "list the files"},
        {"role": "assistant", "content": "<bash>ls -la</bash>"},
    ]
    full = tok.apply_chat_template(messages, return_dict=False)
    prompt = tok.apply_chat_template(messages[:-1], add_generation_prompt=True, return_dict=False)
    assert full[: len(prompt)] == prompt
    assert tok.decode(full[len(prompt) :]).startswith("<bash>ls -la</bash>")
    assert full[-2] == tok.eos_token_id  # the reply ends with eos, so generation stops there
    for tag in TOOL_TAGS:
        assert len(tok.encode(tag, add_special_tokens=False)) == 1, tag
    assert 500 <= len(tok.vocab) <= 1000
    text = mlx_lm.generate(model, tok, prompt, max_tokens=4)
    assert isinstance(text, str)


def test_refuses_to_overwrite_a_folder_that_is_not_a_tiny_model(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(UserError, match="not empty"):
        build_tiny_model(tmp_path / "real")
    assert (tmp_path / "real" / "config.json").read_text() == '{"model_type": "llama"}'
    built = build_tiny_model(tmp_path / "t", seed=1)
    with pytest.raises(UserError, match="seed 1"):
        build_tiny_model(built, seed=2)
