"""Our rows and adapters work with mlx-lm's own command line, so users can take them to
mlx-lm (or bring mlx-lm's back) without conversion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from looper_engine.consolidation.adapter_files import read_adapter_config
from looper_engine.consolidation.train import TrainConfig, clean_rows, train_adapter


def mlx_lm_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlx_lm", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_mlx_lm_trains_on_our_rows_and_generates_with_our_adapter(
    tiny_model: Path, rows: list, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name, part in (("train", rows[:12]), ("valid", rows[12:])):
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in clean_rows(part)))
    theirs = tmp_path / "theirs"
    trained = mlx_lm_cli(
        "lora", "--model", str(tiny_model), "--train", "--data", str(data), "--mask-prompt",
        "--iters", "2", "--batch-size", "2", "--num-layers", "2", "--val-batches", "1",
        "--adapter-path", str(theirs),
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    # their adapter reads as one of ours (a merge or an init_adapter can start from it)
    assert read_adapter_config(theirs).lora_parameters.rank == 8

    ours = train_adapter(tiny_model, rows, [], tmp_path / "ours", TrainConfig(iters=2, batch_size=2))
    assert ours.adapter_dir is not None
    generated = mlx_lm_cli(
        "generate", "--model", str(tiny_model), "--adapter-path", str(ours.adapter_dir),
        "--prompt", "list the files", "--max-tokens", "4",
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr[-2000:]
    assert "Generation:" in generated.stdout
