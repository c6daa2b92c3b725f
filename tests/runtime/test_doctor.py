"""`looper doctor` and the BLAS `looper` gives mlx, run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys

from looper_engine.runtime.blas import INSTALL_HINT, find_openblas


def looper(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "LOOPER_BLAS")}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "looper_engine.cli", *args], capture_output=True, text=True, env=full, timeout=120
    )


def _line(out: str, key: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(key))


def test_doctor_says_which_blas_mlx_uses() -> None:
    r = looper("doctor", "--no-measure")
    assert r.returncode == 0, r.stderr
    assert _line(r.stdout, "looper").split()[1]
    assert "CPU core" in _line(r.stdout, "system")
    blas = _line(r.stdout, "BLAS")
    if sys.platform.startswith("linux") and find_openblas() is not None:
        # Found on the machine: looper re-executed itself with it preloaded.
        assert "OpenBLAS" in blas and "reference" not in r.stdout
    elif sys.platform.startswith("linux"):
        assert "reference" in blas and INSTALL_HINT in r.stdout


def test_without_a_fast_blas_doctor_says_how_much_faster_and_how_to_get_it() -> None:
    r = looper("doctor", "--no-measure", env={"LOOPER_BLAS": "off"})
    assert r.returncode == 0, r.stderr
    assert "reference BLAS" in _line(r.stdout, "BLAS")
    advice = r.stdout.split(_line(r.stdout, "BLAS"), 1)[1].splitlines()[1]
    assert "x faster" in advice and "LOOPER_BLAS" in advice


def test_doctor_measures_matmul_and_speaks_json() -> None:
    import json

    r = looper("doctor", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["blas"]["kind"] in ("openblas", "reference", "accelerate")
    if report["mlx"] is not None:
        assert report["matmul_gflops"] > 0


def test_the_preload_is_not_passed_on_to_the_tools_looper_starts() -> None:
    code = "import os; print(repr(os.environ.get('LD_PRELOAD')), os.environ.get('LOOPER_BLAS_REEXEC'))"
    from looper_engine.runtime import blas

    r = subprocess.run(
        [sys.executable, "-c", "import sys; from looper_engine.runtime.blas import preload_fast_blas; "
         f"preload_fast_blas(); exec({code!r})"],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["None", "None"]
    assert blas.REEXEC_ENV == "LOOPER_BLAS_REEXEC"
