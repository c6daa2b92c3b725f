"""The MLX backend on the real mlx-lm, with the tiny random-weight model built locally and
LoRA adapters written the way mlx-lm's trainer writes them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from looper_engine.chat import Message
from looper_engine.errors import BackendError, UserError
from looper_engine.models import create_backend
from looper_engine.models.base import GenOptions
from looper_engine.models.mlx_backend import MlxBackend
from looper_engine.models.tiny import build_tiny_model

pytest.importorskip("mlx_lm")

import mlx.core as mx  # noqa: E402
import mlx_lm  # noqa: E402
from mlx.utils import tree_flatten  # noqa: E402
from mlx_lm.models.llama import Model, ModelArgs  # noqa: E402
from mlx_lm.tuner.utils import linear_to_lora_layers  # noqa: E402

MESSAGES = [
    Message(role="system", content="You are a coding agent. Use one tool per turn."),
    Message(role="user", content="Run the tests: pytest -q tests/test_math.py"),
]
GREEDY = GenOptions(temperature=0.0, max_tokens=24)


def write_adapter(model: Any, out: Path, seed: int, lora: dict[str, Any], num_layers: int, base: str) -> Path:
    """Random non-zero LoRA weights saved as mlx-lm's trainer saves them."""
    model.freeze()
    linear_to_lora_layers(model, num_layers, lora)
    mx.random.seed(seed)
    weights = {k: mx.random.normal(v.shape) * 0.2 for k, v in tree_flatten(model.trainable_parameters())}
    out.mkdir(parents=True)
    mx.save_safetensors(str(out / "adapters.safetensors"), weights)
    config = {
        "model": base,
        "fine_tune_type": "lora",
        "num_layers": num_layers,
        "lora_parameters": lora,
        "batch_size": 1,
        "iters": 10,
        "learning_rate": 1e-4,
    }
    (out / "adapter_config.json").write_text(json.dumps(config, indent=4))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("mlx") / "tiny")


@pytest.fixture(scope="module")
def adapters(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    lora = {"rank": 4, "scale": 10.0, "dropout": 0.0}
    found = {}
    for name, seed in (("a", 1), ("b", 2)):
        model, _ = mlx_lm.load(str(tiny))
        found[name] = write_adapter(model, root / name, seed, lora, 2, str(tiny))
    model, _ = mlx_lm.load(str(tiny))
    found["other-config"] = write_adapter(
        model, root / "other-config", 3, {"rank": 8, "scale": 5.0, "dropout": 0.1}, 1, str(tiny)
    )
    # An adapter for a different base: same architecture, another width.
    config = json.loads((tiny / "config.json").read_text())
    config.update(hidden_size=64, intermediate_size=96)
    found["other-base"] = write_adapter(Model(ModelArgs.from_dict(config)), root / "other-base", 4, lora, 2, "x")
    # Layer names the model does not have, as from another architecture.
    bogus = root / "bogus-names"
    bogus.mkdir()
    mx.save_safetensors(
        str(bogus / "adapters.safetensors"),
        {"model.layers.1.self_attn.query_key_value.lora_a": mx.ones((128, 4)),
         "model.layers.1.self_attn.query_key_value.lora_b": mx.ones((4, 384))},
    )
    (bogus / "adapter_config.json").write_text(json.dumps(
        {"fine_tune_type": "lora", "num_layers": 1,
         "lora_parameters": {"rank": 4, "scale": 10.0, "dropout": 0.0, "keys": ["self_attn.query_key_value"]}}
    ))
    found["bogus-names"] = bogus
    return found


def reference_text(model_path: Path, adapter: Path | None, max_tokens: int) -> tuple[str, int, int]:
    """What mlx-lm alone generates (greedy): text, prompt tokens, generated tokens."""
    model, tokenizer = mlx_lm.load(str(model_path), adapter_path=str(adapter) if adapter else None)
    prompt = tokenizer.apply_chat_template([m.as_dict() for m in MESSAGES], add_generation_prompt=True)
    text, n = "", 0
    for r in mlx_lm.stream_generate(model, tokenizer, prompt, max_tokens=max_tokens):
        text += r.text
        n = r.generation_tokens
    return text, len(prompt), n


async def generate(backend: MlxBackend, options: GenOptions = GREEDY) -> tuple[str, Any]:
    stream = backend.stream(MESSAGES, options)
    text = "".join([d async for d in stream])
    return text, stream


async def test_stream_matches_mlx_lm_and_reports_real_token_counts(tiny: Path) -> None:
    backend = create_backend(f"mlx:{tiny}")
    assert isinstance(backend, MlxBackend)
    assert backend.label == "mlx:tiny (random weights — output is noise)"
    await backend.check()
    text, stream = await generate(backend)
    want_text, want_prompt, want_generated = reference_text(tiny, None, GREEDY.max_tokens)
    assert text == want_text
    assert stream.usage.prompt_tokens == want_prompt == backend.count_tokens(MESSAGES)
    assert stream.usage.completion_tokens == want_generated
    await backend.aclose()


async def test_count_tokens_uses_the_models_tokenizer_before_loading(tiny: Path) -> None:
    backend = create_backend(f"mlx:{tiny}")
    _, tokenizer = mlx_lm.load(str(tiny))
    more = [*MESSAGES, Message(role="assistant", content="<bash>pytest -q</bash>")]
    expected = len(tokenizer.apply_chat_template([m.as_dict() for m in more], add_generation_prompt=True))
    assert backend.count_tokens(more) == expected
    assert not backend.loaded


async def test_stop_strings_end_the_reply_before_the_stop(tiny: Path) -> None:
    backend = create_backend(f"mlx:{tiny}")
    full, _ = await generate(backend, GenOptions(max_tokens=40))
    stop = full.strip()[3:6] if len(full.strip()) > 6 else full[5:7]
    assert stop and stop in full
    text, stream = await generate(backend, GenOptions(max_tokens=40, stop=["never-in-output", stop]))
    assert text == full[: full.find(stop)]
    assert stream.finish_reason == "stop"


async def test_adapter_changes_output_and_swaps_without_reloading_the_base(
    tiny: Path, adapters: dict[str, Path]
) -> None:
    backend = create_backend(f"mlx:{tiny}")
    base_text, _ = await generate(backend)
    embed = backend._model.model.embed_tokens  # the base weights that must survive swaps

    await backend.load_adapter(adapters["a"])
    a_text, _ = await generate(backend)
    assert a_text != base_text
    assert a_text == reference_text(tiny, adapters["a"], GREEDY.max_tokens)[0]

    await backend.load_adapter(adapters["b"])
    b_text, _ = await generate(backend)
    assert b_text not in (a_text, base_text)
    assert b_text == reference_text(tiny, adapters["b"], GREEDY.max_tokens)[0]
    assert backend._model.model.embed_tokens is embed

    await backend.load_adapter(adapters["other-config"])
    assert (await generate(backend))[0] == reference_text(tiny, adapters["other-config"], GREEDY.max_tokens)[0]

    await backend.load_adapter(None)
    assert (await generate(backend))[0] == base_text
    assert backend.label == "mlx:tiny (random weights — output is noise)"


async def test_spec_adapter_by_id_under_adapters_dir(tiny: Path, adapters: dict[str, Path]) -> None:
    backend = create_backend(f"mlx:{tiny}@a", adapters_dir=adapters["a"].parent)
    assert backend.label == "mlx:tiny@a (random weights — output is noise)"
    await backend.check()
    assert backend.adapter_path == adapters["a"]
    assert (await generate(backend))[0] == reference_text(tiny, adapters["a"], GREEDY.max_tokens)[0]


async def test_adapter_for_another_base_is_refused_and_the_current_one_kept(
    tiny: Path, adapters: dict[str, Path]
) -> None:
    backend = create_backend(f"mlx:{tiny}@{adapters['a']}")
    await backend.check()
    a_text, _ = await generate(backend)
    with pytest.raises(UserError) as info:
        await backend.load_adapter(adapters["other-base"])
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"adapter {adapters['other-base']} was made for another base model:")
    assert "do not fit tiny" in message
    with pytest.raises(UserError, match="was made for another base model.*has no place"):
        await backend.load_adapter(adapters["bogus-names"])
    assert backend.adapter_path == adapters["a"]
    assert (await generate(backend))[0] == a_text


def test_missing_adapter_and_non_model_paths_are_user_errors(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"adapter nope not found \(looked for the folders nope and"):
        create_backend(f"mlx:{tiny}@nope", adapters_dir=tmp_path)
    with pytest.raises(UserError) as info:
        create_backend(f"mlx:{tmp_path}/no-such-model")
    assert str(info.value) == f"{tmp_path}/no-such-model is not an MLX model folder (no config.json)"
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="is not an MLX model folder"):
        create_backend(f"mlx:{tmp_path}/empty")


async def test_a_folder_with_config_but_no_weights_fails_with_one_line(tmp_path: Path, tiny: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny / "config.json").read_text())
    backend = create_backend(f"mlx:{broken}")
    with pytest.raises(UserError, match=f"^cannot load the MLX model at {broken}: [^\n]+$"):
        await backend.check()
    with pytest.raises(BackendError, match="cannot load the MLX model"):
        await generate(backend)


async def test_concurrent_streams_take_turns_on_one_model(tiny: Path) -> None:
    backend = create_backend(f"mlx:{tiny}")
    alone, _ = await generate(backend)
    together = await asyncio.gather(*(generate(backend) for _ in range(3)))
    assert [text for text, _ in together] == [alone] * 3


async def test_aclose_stops_generation_and_the_model_serves_again(tiny: Path) -> None:
    backend = create_backend(f"mlx:{tiny}")
    stream = backend.stream(MESSAGES, GenOptions(max_tokens=5000))
    async for _ in stream:
        await stream.aclose()
        break
    await backend.load()  # queued behind the generation: returns once the worker is free
    assert stream.finish_reason == "cancelled"
    assert stream.usage.completion_tokens < 5000
    text, s = await generate(backend)
    assert text == reference_text(tiny, None, GREEDY.max_tokens)[0]
