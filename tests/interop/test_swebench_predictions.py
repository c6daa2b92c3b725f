"""SWE-bench predictions: one line per SWE-Bench-CL episode, its patch the workspace diff
against the base commit, which `git apply` takes at that commit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from looper_engine.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
from test_swebench_cl import SAMPLE, git, make_repo  # noqa: E402

pytestmark = pytest.mark.skipif(not SAMPLE.is_file(), reason="the SWE-Bench-CL format sample is not on this machine")


@pytest.fixture(autouse=True)
def _bare_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


async def record_swe_episode(tmp_path: Path, db: Path) -> tuple[Path, str]:
    """The format sample's task, solved by the oracle policy from its reference fix,
    recorded by the real runner and store writer. Returns (clone, base commit)."""
    from looper_engine.agent.runner import Runner
    from looper_engine.config import AgentConfig
    from looper_engine.events import EventBus
    from looper_engine.models.scripted import ScriptedBackend
    from looper_engine.store.db import Store
    from looper_engine.store.writer import StoreWriter
    from looper_engine.tasks.model import GoldEdit
    from looper_engine.tasks.swebench_cl import (
        curriculum_tasks,
        load_curriculum,
        prepare_swe_workspace,
        remove_worktree,
        to_task,
    )

    (swe,) = curriculum_tasks(load_curriculum(SAMPLE))
    clone = tmp_path / "repos" / "local__dummy_math_project"
    make_repo(
        clone,
        {
            "math_utils.py": "def add(a, b):\n    return a - b\n",
            "test_math_utils.py": (
                "import unittest\nfrom math_utils import add\nclass TestMath(unittest.TestCase):\n"
                "    def test_initial_behavior(self):\n"
                "        self.assertEqual(add(2, 2), 0) # Current incorrect behavior\n"
                "    def test_existing_behavior(self):\n        self.assertTrue(True)\n\n"
            ),
        },
    )
    git(clone, "tag", "initial_state", "HEAD~1")
    ws = await prepare_swe_workspace(swe, tmp_path / "repos", tmp_path / "ws")
    task = to_task(swe, ws).model_copy(
        update={"gold": [GoldEdit(path="math_utils.py", old="return a - b", new="return a + b")]}
    )
    store = await Store.open(db)
    bus = EventBus()
    writer = StoreWriter(store, bus, linger_s=0).start()
    try:
        await Runner([task], ScriptedBackend("oracle"), AgentConfig(), bus, suite="swe-bench-cl").run()
    finally:
        await writer.close()
        await store.close()
        await remove_worktree(ws)
    return clone, git(clone, "rev-parse", "initial_state").strip()


def test_predictions_hold_the_workspace_diff_against_the_base_commit(tmp_path: Path) -> None:
    import asyncio

    db = tmp_path / "l.db"
    clone, base = asyncio.run(record_swe_episode(tmp_path, db))
    # A koan episode in the same database is not a SWE-bench prediction.
    assert main(["run", "--tasks", "off_by_one/paginate", "--db", str(db), "--quiet", "--rate", "0"]) == 0
    out = tmp_path / "predictions.jsonl"
    assert main(["export", "--db", str(db), "--format", "swebench", "--out", str(out)]) == 0
    (line,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert set(line) == {"instance_id", "model_name_or_path", "model_patch"}
    assert line["instance_id"] == "local__dummy_math_project_task_1"
    assert line["model_name_or_path"] == "scripted:oracle"
    assert "-    return a - b" in line["model_patch"] and "+    return a + b" in line["model_patch"]
    # What the harness does with it: check out the base commit and apply the patch.
    git(clone, "checkout", "-q", base)
    subprocess.run(["git", "apply", "-"], cwd=clone, input=line["model_patch"], text=True, check=True)
    assert "return a + b" in (clone / "math_utils.py").read_text()
