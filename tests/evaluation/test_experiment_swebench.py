"""SWE-Bench-CL as an experiment's task source: a sequence in chronological order, each episode
in a git worktree at its task's base commit (test patch applied), removed afterwards."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from looper_engine.evaluation.cycle import ExperimentRunner
from looper_engine.evaluation.experiment import load_experiment, plan_experiment
from looper_engine.evaluation.results import load_results
from looper_engine.store.db import Store

OPS = "def add(a, b):\n    return a + b\n\n\ndef clamp(x, lo, hi):\n    return max(lo, min(x, lo))\n"
TESTS = "from calc.ops import add, clamp\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


@pytest.fixture(autouse=True)
def _bare_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    # The tiny repositories need no pytest plugins; loading this environment's would be slow.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout


def patch_adding(clone: Path, rel: str, text: str) -> str:
    (clone / rel).write_text(text)
    git(clone, "add", "-A")
    patch = git(clone, "diff", "--cached")
    git(clone, "reset", "-q", "--hard")
    return patch


def swe(n: int, base: str, test_patch: str, f2p: list[str], created: str, statement: str) -> dict:
    return {
        "metadata": {"instance_id": f"acme__calc-{n}", "repo": "acme/calc", "base_commit": base, "created_at": created},
        "task": {"problem_statement": statement},
        "evaluation": {"patch": "", "test_patch": test_patch, "FAIL_TO_PASS": f2p, "PASS_TO_PASS": []},
        "continual_learning": {"sequence_position": n, "modified_files": ["calc/ops.py"]},
    }


@pytest.fixture
def curriculum(tmp_path: Path) -> Path:
    clone = tmp_path / "repos" / "acme__calc"
    (clone / "calc").mkdir(parents=True)
    (clone / "tests").mkdir()
    git(clone, "init", "-q")
    (clone / "calc" / "__init__.py").write_text("")
    (clone / "calc" / "ops.py").write_text(OPS)
    (clone / "tests" / "test_ops.py").write_text(TESTS)
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", "base")
    base = git(clone, "rev-parse", "HEAD").strip()
    broken = patch_adding(clone, "tests/test_ops.py", TESTS + "\n\ndef test_clamp_high():\n    assert clamp(5, 0, 10) == 5\n")
    passing = patch_adding(clone, "tests/test_ops.py", TESTS + "\n\ndef test_add_zero():\n    assert add(0, 0) == 0\n")
    tasks = [
        # Listed out of order: the stream follows sequence_position, not the file.
        swe(2, base, passing, ["tests/test_ops.py::test_add_zero"], "2024-02-01", "add(0, 0) must be 0."),
        swe(1, base, broken, ["tests/test_ops.py::test_clamp_high"], "2024-01-01", "clamp ignores hi."),
    ]
    data = {"sequences": [{"id": "acme__calc_sequence", "repo": "acme/calc", "tasks": tasks}]}
    (tmp_path / "curriculum.json").write_text(json.dumps(data))
    (tmp_path / "exp.toml").write_text(
        'name = "swe"\nmodel = "scripted:wrong-fix"\nchunk_size = 1\n'
        '[stream]\nsource = "swe-bench-cl"\ncurriculum = "curriculum.json"\nrepos = "repos"\nsequences = ["calc"]\n'
        '[limits]\nmax_steps = 4\n'
        # Two stream tasks: at 0.05 a gate could never reject, and the file would be refused.
        '[gate]\nalpha = 0.3\n'
        '[[arms]]\nname = "memory"\nkind = "memory"\n'
    )
    return tmp_path / "exp.toml"


def test_a_swe_bench_cl_sequence_runs_in_worktrees_in_chronological_order(curriculum: Path) -> None:
    tmp = curriculum.parent
    plan = plan_experiment(load_experiment(curriculum), curriculum)
    assert plan.chunks == [["swe-bench-cl/acme__calc-1"], ["swe-bench-cl/acme__calc-2"]]

    async def go() -> object:
        outcome = await ExperimentRunner(plan, tmp / "lab.db", adapters_dir=tmp / "adapters").run()
        store = await Store.open(tmp / "lab.db", create=False)
        try:
            return outcome, await load_results(store, "swe", resamples=0)
        finally:
            await store.close()

    outcome, results = asyncio.run(go())
    assert outcome.status == "finished"
    # The clamp task's new test fails at the base commit; the other one passes as it is.
    assert results.zero_shot == [0.0, 1.0]
    assert results.arm("memory").matrix == [[0.0, 1.0], [0.0, 1.0]]
    con = sqlite3.connect(tmp / "lab.db")
    (episode,) = con.execute(
        "SELECT episode_id FROM exp_cells WHERE arm='zero-shot' AND task_id='swe-bench-cl/acme__calc-1'"
    ).fetchone()
    (observation,) = con.execute(
        "SELECT data FROM events WHERE episode_id=? AND kind='tool_result' ORDER BY seq LIMIT 1", (episode,)
    ).fetchone()
    assert "min(x, lo)" in json.loads(observation)["output"]  # the code at the base commit
    (signature,) = con.execute("SELECT error_signature FROM scores WHERE episode_id=?", (episode,)).fetchone()
    assert "assert" in signature.lower()
    worktrees = git(tmp / "repos" / "acme__calc", "worktree", "list").strip().splitlines()
    assert len(worktrees) == 1  # every episode's worktree is gone
