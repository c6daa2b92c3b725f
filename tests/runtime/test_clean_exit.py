"""A process that used mlx in worker threads ends with exit code 0: no "terminate called
without an active exception" (SIGABRT, 134) once its work is done."""

from __future__ import annotations

import importlib.util
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mlx_lm") is None, reason="needs mlx-lm (the mlx extra)"
)

EXPERIMENT = """
name = "exit-check"
model = "mlx:{model}"
chunk_size = 2
cycles = 1
[stream]
families = ["off_by_one", "wrong_operator"]
per_family = 2
[agent]
few_shot = false
no_pip_rule = false
skip_verification_rule = false
[limits]
max_steps = 3
max_tokens_per_turn = 16
concurrency = 2
[train]
iters = 2
batch_size = 1
steps_per_report = 1
steps_per_eval = 2
val_batches = 1
save_every = 2
[[arms]]
name = "base"
[[arms]]
name = "adapter"
kind = "adapter"
strategy = "naive"
teacher = "scripted:oracle"
[gate]
enabled = false
"""


def test_a_training_experiment_exits_cleanly(tmp_path: Path) -> None:
    from looper_engine.models.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    spec = tmp_path / "exp.toml"
    spec.write_text(EXPERIMENT.format(model=model))
    r = subprocess.run(
        [sys.executable, "-m", "looper_engine.cli", "experiment", "run", str(spec), "--db", str(tmp_path / "x.db"),
         "--quiet"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert "terminate called" not in r.stderr
    assert r.returncode == 0, r.stderr[-2000:]
    con = sqlite3.connect(tmp_path / "x.db")
    assert con.execute("SELECT count(*) FROM adapters").fetchone()[0] == 1  # a night trained


# Several executors doing mlx work, never shut down by the program: the exit hook must
# clear their streams. With plain thread pools this aborts in about one process in three.
WORKERS = textwrap.dedent(
    """
    import mlx.core as mx
    from looper_engine.runtime.mlx_threads import MlxExecutor, to_mlx_thread
    import asyncio

    def work():
        a = mx.random.normal((128, 128))
        for _ in range(10):
            a = a @ a / 12
        mx.eval(a)

    pools = [MlxExecutor() for _ in range(3)]
    for f in [pools[i % 3].submit(work) for i in range(6)]:
        f.result()
    asyncio.run(to_mlx_thread(work))
    print("ok")
    """
)


def test_mlx_worker_threads_leave_nothing_behind_at_exit() -> None:
    codes = []
    for _ in range(5):
        r = subprocess.run([sys.executable, "-c", WORKERS], capture_output=True, text=True, timeout=120)
        assert "terminate called" not in r.stderr
        codes.append(r.returncode)
        assert r.stdout.strip() == "ok", r.stderr
    assert codes == [0] * 5


def test_an_executor_runs_in_order_on_one_thread_and_refuses_work_after_shutdown() -> None:
    import threading

    from looper_engine.runtime.mlx_threads import MlxExecutor

    pool = MlxExecutor("t")
    seen: list[tuple[int, str]] = []
    futures = [pool.submit(lambda i=i: seen.append((i, threading.current_thread().name)) or i) for i in range(5)]
    assert [f.result(timeout=10) for f in futures] == list(range(5))
    assert [i for i, _ in seen] == list(range(5)) and {n for _, n in seen} == {"t"}
    boom = pool.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        boom.result(timeout=10)
    pool.shutdown()
    assert pool.thread is not None and not pool.thread.is_alive()
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)
