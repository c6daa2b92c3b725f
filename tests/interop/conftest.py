from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

HAS_MLX = importlib.util.find_spec("mlx_lm") is not None and importlib.util.find_spec("mlx") is not None


@pytest.fixture(scope="session", autouse=True)
def _mini_swe_agent_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """mini-swe-agent makes its global config folder when imported: keep it out of the home."""
    old = os.environ.get("MSWEA_GLOBAL_CONFIG_DIR")
    os.environ["MSWEA_GLOBAL_CONFIG_DIR"] = str(tmp_path_factory.mktemp("mini-swe-agent-config"))
    yield
    if old is None:
        os.environ.pop("MSWEA_GLOBAL_CONFIG_DIR", None)
    else:
        os.environ["MSWEA_GLOBAL_CONFIG_DIR"] = old


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not HAS_MLX:
        pytest.skip("needs the mlx extra")
    from looper_engine.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("interop") / "tiny")


@pytest.fixture(scope="session")
def trained_adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An adapter trained by Looper's own trainer: the top block only, every linear layer,
    a learning rate high enough that a few steps move the logits well past the tolerance."""
    from looper_engine.consolidation.train import TrainConfig, train_adapter
    from looper_engine.models.tiny import toy_rows

    rows = toy_rows()
    out = tmp_path_factory.mktemp("adapter") / "a-interop"
    train_adapter(
        tiny_model, rows, toy_rows(heldout=True), out,
        TrainConfig(iters=6, rank=4, learning_rate=2e-3, num_layers=1, steps_per_eval=6, save_every=6),
    )
    return out
