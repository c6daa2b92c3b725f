"""Which BLAS mlx computes with, and a fast one by default.

mlx's Linux CPU wheel ships a reference BLAS (a few GFLOP/s for float32 matmul). An
OpenBLAS installed on the machine is an order of magnitude faster, and mlx uses it when it
is preloaded: its `cblas_*` symbols then win over the wheel's own. A library can only be
preloaded before the process starts, so `looper` re-executes itself once with LD_PRELOAD
set (`preload_fast_blas`), guarded by an environment variable so it happens at most once.
The variable is removed again in the new process, so the tools and tests it starts get the
environment the user gave it.

LOOPER_BLAS chooses: unset or `auto` finds an OpenBLAS, `off` keeps the wheel's reference
BLAS, a path names the library to preload.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from pydantic import BaseModel

BLAS_ENV = "LOOPER_BLAS"
REEXEC_ENV = "LOOPER_BLAS_REEXEC"
_SAVED_PRELOAD_ENV = "LOOPER_BLAS_SAVED_PRELOAD"
INSTALL_HINT = "apt-get install libopenblas0-pthread"
#: End-to-end full training of the ~1M-parameter mini-lab model, OpenBLAS against the
#: wheel's reference BLAS on a 2-core x86 machine (bench/bench_train.py prints it).
TRAINING_SPEEDUP = 3.0
#: float32 matmul alone (512x512 and up) on the same machine.
MATMUL_SPEEDUP = 15.0


def _multiarch() -> str:
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return f"{arch}-linux-gnu"


def candidates() -> list[Path]:
    """Where distributions put an OpenBLAS that exports the cblas interface, best first."""
    arch = _multiarch()
    out: list[Path] = []
    for root in (Path("/usr/lib") / arch, Path("/usr/lib")):
        for flavour in ("openblas-pthread", "openblas-openmp", "openblas-serial"):
            out.append(root / flavour / "libblas.so.3")
    for root in (Path("/usr/lib") / arch, Path("/usr/lib64"), Path("/usr/lib"), Path("/usr/local/lib")):
        out += [root / "libopenblasp.so.0", root / "libopenblas.so.0"]
    return out


def find_openblas() -> Path | None:
    """The OpenBLAS to use: LOOPER_BLAS's path, else the first candidate on this machine;
    None when LOOPER_BLAS is `off`, outside Linux, or when there is none."""
    choice = os.environ.get(BLAS_ENV, "auto").strip()
    if choice.lower() in ("off", "reference", "none", "0"):
        return None
    if choice and choice.lower() != "auto":
        path = Path(choice).expanduser()
        return path if path.is_file() else None
    if not sys.platform.startswith("linux"):
        return None
    return next((p for p in candidates() if p.is_file()), None)


def _mapped_libraries() -> list[str]:
    try:
        text = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    seen: dict[str, None] = {}
    for line in text.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and ".so" in parts[5]:
            seen[parts[5].strip()] = None
    return list(seen)


def loaded_openblas() -> str | None:
    """The OpenBLAS mapped into this process (preloaded or otherwise), if any. numpy's own
    renamed copy (scipy_openblas) does not count: mlx cannot call it."""
    for lib in _mapped_libraries():
        name = Path(lib).name
        if "scipy_openblas" in name:
            continue
        if "openblas" in name or "/openblas-" in lib:
            return lib
    return None


class BlasInfo(BaseModel):
    """What mlx computes with in this process, in words a user can act on."""

    kind: str  # "openblas", "accelerate" or "reference"
    library: str | None = None
    available: str | None = None  # an OpenBLAS on the machine that is not in use
    disabled: bool = False

    @property
    def fast(self) -> bool:
        return self.kind != "reference"

    def summary(self) -> str:
        if self.kind == "openblas":
            return f"OpenBLAS ({self.library})"
        if self.kind == "accelerate":
            return "Accelerate (macOS)"
        if self.disabled:
            return f"mlx's reference BLAS ({BLAS_ENV}=off)"
        return "mlx's reference BLAS"

    def advice(self) -> str | None:
        """One line on what a faster BLAS would give and how to get it; None when fast."""
        if self.fast:
            return None
        gain = f"training is ~{TRAINING_SPEEDUP:.0f}x faster (matmul ~{MATMUL_SPEEDUP:.0f}x) with OpenBLAS"
        if self.disabled:
            return f"{gain}: unset {BLAS_ENV} to use it"
        if self.available:
            return f"{gain}: {self.available} is installed; run through `looper` or preload it (LD_PRELOAD={self.available})"
        if not sys.platform.startswith("linux"):
            return None
        return f"{gain}: {INSTALL_HINT} (looper then uses it by itself)"

    def line(self) -> str:
        """The summary, and the advice when there is some, on one line."""
        advice = self.advice()
        return self.summary() + (f" — {advice}" if advice else "")


def blas_info() -> BlasInfo:
    if sys.platform == "darwin":
        return BlasInfo(kind="accelerate")
    lib = loaded_openblas()
    if lib is not None:
        return BlasInfo(kind="openblas", library=lib)
    disabled = os.environ.get(BLAS_ENV, "").strip().lower() in ("off", "reference", "none", "0")
    found = None if disabled else find_openblas()
    return BlasInfo(kind="reference", available=str(found) if found else None, disabled=disabled)


def preload_fast_blas() -> None:
    """Re-execute this process once with an OpenBLAS preloaded, when there is one and it is
    not loaded yet. Call it first thing in a command-line entry point, before mlx is
    imported; it returns when there is nothing to do (or the exec fails), and otherwise
    never returns."""
    if os.environ.pop(REEXEC_ENV, None) is not None:
        saved = os.environ.pop(_SAVED_PRELOAD_ENV, "")
        if saved:
            os.environ["LD_PRELOAD"] = saved
        else:
            os.environ.pop("LD_PRELOAD", None)
        return
    if not sys.platform.startswith("linux") or "mlx.core" in sys.modules:
        return
    lib = find_openblas()
    if lib is None or loaded_openblas() is not None:
        return
    env = dict(os.environ)
    before = env.get("LD_PRELOAD", "")
    env[REEXEC_ENV] = "1"
    env[_SAVED_PRELOAD_ENV] = before
    env["LD_PRELOAD"] = f"{lib}:{before}" if before else str(lib)
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, argv, env)
    except OSError:
        return
