"""`looper doctor`: what this machine gives Looper, and what would make it faster.

One line per fact: versions, cores, the BLAS mlx computes with (with one line of advice
when it is the slow reference BLAS), and a float32 matmul measured on the spot so the
figure is this machine's, not a claim.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import sys
import time

from pydantic import BaseModel

from looper_engine import __version__
from looper_engine.runtime.blas import BlasInfo, blas_info


class DoctorReport(BaseModel):
    looper: str
    python: str
    system: str
    cores: int
    mlx: str | None
    mlx_lm: str | None
    blas: BlasInfo
    matmul_gflops: float | None = None

    def lines(self) -> list[str]:
        out = [
            f"looper     {self.looper}",
            f"python     {self.python}",
            f"system     {self.system}, {self.cores} CPU core{'s' if self.cores != 1 else ''}",
        ]
        if self.mlx is None:
            out.append("mlx        not installed: pip install 'looper[mlx]' for mlx: models and training")
        else:
            out.append(f"mlx        {self.mlx}, mlx-lm {self.mlx_lm or 'not installed'}")
        out.append(f"BLAS       {self.blas.summary()}")
        advice = self.blas.advice()
        if advice:
            out.append(f"           {advice}")
        if self.matmul_gflops is not None:
            out.append(f"matmul     {self.matmul_gflops:.1f} GFLOP/s (float32, 512x512, mlx on the CPU)")
        return out


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def measure_matmul(size: int = 512, seconds: float = 0.3) -> float | None:
    """float32 matmul throughput of mlx in GFLOP/s (None without mlx)."""
    try:
        import mlx.core as mx
    except ImportError:
        return None
    a = mx.random.normal((size, size))
    b = mx.random.normal((size, size))
    mx.eval(a @ b)  # warm-up: first use allocates and picks kernels
    runs = 0
    t0 = time.perf_counter()
    while True:
        mx.eval(a @ b)
        runs += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and runs >= 3:
            break
    return 2 * size**3 * runs / elapsed / 1e9


def diagnose(measure: bool = True) -> DoctorReport:
    mlx_version = _version("mlx")
    return DoctorReport(
        looper=__version__,
        python=f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        system=f"{platform.system()} {platform.machine()}",
        cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
        mlx=mlx_version,
        mlx_lm=_version("mlx-lm"),
        blas=blas_info(),
        matmul_gflops=measure_matmul() if measure and mlx_version else None,
    )


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="what this machine gives Looper: versions, cores, BLAS, matmul speed")
    p.add_argument("--no-measure", action="store_true", help="skip the matmul measurement")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    report = diagnose(measure=not args.no_measure)
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        print("\n".join(report.lines()))
    return 0


def environment() -> dict[str, str]:
    """What a training run here computes with, to record beside its results (no
    measurement: cheap enough to call for every training run)."""
    report = diagnose(measure=False)
    return {
        "system": f"{report.system}, {report.cores} CPU cores",
        "python": platform.python_version(),
        "mlx": f"mlx {report.mlx or 'not installed'}, mlx-lm {report.mlx_lm or 'not installed'}",
        "blas": report.blas.line(),
    }
