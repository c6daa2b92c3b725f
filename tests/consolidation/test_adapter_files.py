from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
from cl_helpers import lora_config, lora_weights

from looper_engine.consolidation.adapter_files import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    is_adapter_dir,
    load_adapter_weights,
    new_adapter_id,
    read_adapter_config,
    verify_adapter_loads,
    write_adapter_atomically,
)
from looper_engine.errors import UserError


def test_ids_are_short_and_sort_by_time() -> None:
    a = new_adapter_id(datetime(2026, 11, 21, 15, 32))
    b = new_adapter_id(datetime(2026, 11, 21, 15, 33))
    assert re.fullmatch(r"a-20261121-1532-[0-9a-f]{4}", a)
    assert sorted([b, a]) == [a, b]


def test_write_then_read_and_mlx_lm_loads_it(tiny_model: Path, tmp_path: Path) -> None:
    dest = write_adapter_atomically(tmp_path / "new", lora_weights(0), lora_config())
    assert is_adapter_dir(dest)
    assert read_adapter_config(dest).lora_parameters.keys == ["self_attn.q_proj"]
    assert set(load_adapter_weights(dest)) == set(lora_weights(0))
    verify_adapter_loads(tiny_model, dest)
    assert [p.name for p in tmp_path.iterdir()] == ["new"], "temporary folder left behind"


def test_never_overwrites_and_fills_an_existing_run_folder(tmp_path: Path) -> None:
    dest = write_adapter_atomically(tmp_path / "a", lora_weights(0), lora_config())
    before = (dest / ADAPTER_WEIGHTS).read_bytes()
    with pytest.raises(UserError, match="already holds an adapter"):
        write_adapter_atomically(dest, lora_weights(1), lora_config())
    assert (dest / ADAPTER_WEIGHTS).read_bytes() == before

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    write_adapter_atomically(run, lora_weights(1), lora_config())
    assert is_adapter_dir(run) and (run / "checkpoints").is_dir()
    assert sorted(p.name for p in run.iterdir()) == [ADAPTER_CONFIG, ADAPTER_WEIGHTS, "checkpoints"]

    half = tmp_path / "half"
    half.mkdir()
    (half / ADAPTER_WEIGHTS).write_bytes(b"partial")
    with pytest.raises(UserError, match="already holds"):
        write_adapter_atomically(half, lora_weights(1), lora_config())


def test_mismatched_adapter_is_a_user_error(tiny_model: Path, tmp_path: Path) -> None:
    wrong = {k: v[:, :2] if k.endswith("lora_a") else v for k, v in lora_weights(0).items()}
    dest = write_adapter_atomically(tmp_path / "wrong", wrong, lora_config())
    with pytest.raises(UserError, match="cannot load adapter"):
        verify_adapter_loads(tiny_model, dest)
    (tmp_path / "notes").mkdir()
    with pytest.raises(UserError, match="adapter_config.json is missing"):
        read_adapter_config(tmp_path / "notes")
    (tmp_path / "notes" / ADAPTER_CONFIG).write_text('{"num_layers": 2}')
    with pytest.raises(UserError, match="lora_parameters"):
        read_adapter_config(tmp_path / "notes")


_FULL_DISK = """
import resource, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from cl_helpers import lora_config, lora_weights
from looper_engine.consolidation.adapter_files import write_adapter_atomically
from looper_engine.errors import UserError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
# Every file past 2 KB fails to grow, as on a full disk (EFBIG in place of ENOSPC).
resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
try:
    write_adapter_atomically(Path(sys.argv[1]), lora_weights(0), lora_config())
except UserError as exc:
    print(exc)
    sys.exit(3)
print("written")
"""


def test_a_failed_write_leaves_no_half_written_adapter(tmp_path: Path) -> None:
    """The weights cannot be written whole (a disk that fills up): the adapter folder never
    appears, and no temporary folder is left beside it."""
    import subprocess
    import sys

    dest = tmp_path / "adapters" / "a-1"
    here = str(Path(__file__).parent)
    proc = subprocess.run([sys.executable, "-c", _FULL_DISK, str(dest), here], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stdout.startswith("cannot write the adapter in") and "disk full" in proc.stdout
    assert len(proc.stdout.strip().splitlines()) == 1
    assert not dest.exists()
    assert list((tmp_path / "adapters").iterdir()) == [], "temporary folder left behind"
