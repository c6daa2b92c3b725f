"""`looper models` and `looper model init-tiny` through the real command line."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from model_servers import FakeModel, FakeOllama, free_closed_port

from looper_engine.cli import main
from looper_engine.models.commands import human_age, human_size


def test_models_lists_the_servers_models(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOllama({"qwen2.5-coder:7b": FakeModel(), "llama3.2:3b": FakeModel()}) as server:
        code = main(["models", "--host", server.url])
    out = capsys.readouterr().out
    assert code == 0
    assert f"Ollama models on {server.url}" in out
    assert out.index("llama3.2:3b") < out.index("qwen2.5-coder:7b")
    assert "1.2 GB" in out and "Q4_K_M" in out


def test_models_on_an_empty_server_says_how_to_pull(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOllama({}) as server:
        assert main(["models", "--host", server.url]) == 0
    assert "has no models; pull one with `ollama pull" in capsys.readouterr().out


def test_models_with_the_server_down_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_closed_port()}"
    assert main(["models", "--host", url]) == 2
    err = capsys.readouterr().err
    assert err == f"looper: cannot reach Ollama at {url}; start it with `ollama serve`\n"


def test_init_tiny_builds_a_model_and_says_it_is_noise(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("mlx_lm")
    target = tmp_path / "tiny"
    assert main(["model", "init-tiny", str(target), "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert str(target) in out and "noise" in out
    config = json.loads((target / "config.json").read_text())
    assert config["looper_tiny"] is True and config["looper_tiny_seed"] == 5


def test_init_tiny_refuses_a_folder_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("mlx_lm")
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["model", "init-tiny", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_sizes_and_ages_read_like_ollama_list() -> None:
    assert human_size(4_683_087_332) == "4.7 GB"
    assert human_size(512) == "512 B"
    now = datetime(2025, 6, 1, tzinfo=timezone.utc)
    assert human_age(now - timedelta(days=3), now) == "3 days ago"
    assert human_age(now - timedelta(seconds=5), now) == "just now"


def test_a_bad_pretraining_setting_names_the_setting_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["model", "pretrain", str(tmp_path / "m"), "--iters", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "iters" in err and "greater than or equal to 1" in err
    assert not (tmp_path / "m").exists()
