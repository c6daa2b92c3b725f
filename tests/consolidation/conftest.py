from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from looper_engine.models.tiny import build_tiny_model, toy_rows

# mlx-lm is the optional `mlx` extra: without it there is nothing here to run.
if importlib.util.find_spec("mlx_lm") is None or importlib.util.find_spec("mlx") is None:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("consolidation") / "tiny")


@pytest.fixture(scope="session")
def rows() -> list[dict[str, Any]]:
    return toy_rows()


@pytest.fixture(scope="session")
def heldout() -> list[dict[str, Any]]:
    return toy_rows(heldout=True)
