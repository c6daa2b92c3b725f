"""`--ray`: the same small koan experiment run in-process and on a local Ray, in separate
databases. The cells agree, every episode's events are in the Ray run's store (written by the
driver), and the episodes really ran in other processes."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from looper_engine.cli import main
from looper_engine.evaluation.cycle import ExperimentRunner
from looper_engine.evaluation.distributed import RAY_MISSING
from looper_engine.evaluation.experiment import parse_experiment, plan_experiment

ray = pytest.importorskip("ray")

SPEC = """
name = "ray-small"
model = "scripted:oracle"
chunk_size = 2
[stream]
families = ["off_by_one"]
per_family = 2
[limits]
max_steps = 6
concurrency = 2
[[arms]]
name = "base"
"""


@pytest.fixture(scope="module")
def local_ray() -> Any:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def run_experiment(db: Path, tmp: Path, address: str | None) -> ExperimentRunner:
    plan = plan_experiment(parse_experiment(SPEC, "exp.toml"), "exp.toml")
    runner = ExperimentRunner(plan, db, adapters_dir=tmp / "adapters", ray=address)
    outcome = asyncio.run(runner.run())
    assert outcome.status == "finished"
    return runner


def read_db(db: Path) -> dict[str, Any]:
    con = sqlite3.connect(db)
    try:
        cells = con.execute(
            "SELECT arm, seed, cycle, phase, chunk, task_id, resolved, reused, episode_id FROM exp_cells"
        ).fetchall()
        episodes = {
            row[0]: {"task": row[1], "steps": row[2], "status": row[3]}
            for row in con.execute("SELECT id, task_id, steps, status FROM episodes")
        }
        for ep_id, ep in episodes.items():
            ep["kinds"] = [r[0] for r in con.execute(
                "SELECT kind FROM events WHERE episode_id=? ORDER BY seq", (ep_id,))]
            ep["step_rows"] = con.execute("SELECT count(*) FROM steps WHERE episode_id=?", (ep_id,)).fetchone()[0]
    finally:
        con.close()
    return {"cells": cells, "episodes": episodes}


@pytest.fixture(scope="module")
def both(local_ray: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("ray")
    plain = run_experiment(tmp / "plain.db", tmp, None)
    on_ray = run_experiment(tmp / "ray.db", tmp, "local")
    return {
        "plain": read_db(tmp / "plain.db"),
        "ray": read_db(tmp / "ray.db"),
        "plain_runner": plain,
        "ray_runner": on_ray,
    }


def by_cell(cells: list[tuple]) -> dict[tuple, int]:
    return {c[:6]: c[6] for c in cells}


def test_cells_are_the_same_with_and_without_ray(both: dict[str, Any]) -> None:
    plain, on_ray = by_cell(both["plain"]["cells"]), by_cell(both["ray"]["cells"])
    assert plain and plain == on_ray
    assert all(plain.values())  # the oracle resolves every koan
    assert len({c[5] for c in both["ray"]["cells"]}) == 2


def test_every_episode_is_in_the_ray_store_as_in_process(both: dict[str, Any]) -> None:
    plain = {ep["task"]: ep for ep in both["plain"]["episodes"].values()}
    on_ray = {ep["task"]: ep for ep in both["ray"]["episodes"].values()}
    assert set(plain) == set(on_ray) and len(on_ray) == 2
    for task, ep in on_ray.items():
        assert ep["status"] == "resolved"
        assert ep["steps"] == plain[task]["steps"] > 0
        assert ep["step_rows"] == plain[task]["step_rows"] > 0
        assert ep["kinds"] == plain[task]["kinds"]
        assert ep["kinds"][0] == "episode_started" and ep["kinds"][-1] == "episode_finished"
    for cell in both["ray"]["cells"]:
        assert cell[8] in both["ray"]["episodes"]


def test_the_ray_episodes_ran_in_other_processes(both: dict[str, Any]) -> None:
    assert both["plain_runner"].ray_executor is None
    workers = both["ray_runner"].ray_executor.workers
    assert set(workers) == set(both["ray"]["episodes"])
    assert all(pid != os.getpid() for _, pid in workers.values())


def write_spec(tmp_path: Path) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(SPEC)
    return path


def test_cli_ray_local_runs_the_experiment(local_ray: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cli.db"
    assert main(["experiment", "run", str(write_spec(tmp_path)), "--db", str(db),
                 "--adapters", str(tmp_path / "adapters"), "--quiet", "--ray", "local"]) == 0
    assert "finished: 2 episodes run" in capsys.readouterr().out
    data = read_db(db)
    assert len(data["episodes"]) == 2 and all(ep["status"] == "resolved" for ep in data["episodes"].values())
    assert ray.is_initialized()  # the CLI reused the connection it found and left it alone


def test_cli_unreachable_ray_address_is_one_line(local_ray: Any, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "none.db"
    code = main(["experiment", "run", str(write_spec(tmp_path)), "--db", str(db), "--quiet", "--ray", "127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "--ray 127.0.0.1:1" in err
    assert not db.exists()  # nothing ran


def test_cli_without_the_ray_package_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    db = tmp_path / "none.db"
    code = main(["experiment", "run", str(write_spec(tmp_path)), "--db", str(db), "--quiet", "--ray", "auto"])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"looper: {RAY_MISSING}"
    assert not db.exists()


def test_a_task_that_is_not_built_in_travels_as_its_files(tmp_path: Path) -> None:
    import shutil

    from looper_engine.config import AgentConfig
    from looper_engine.evaluation.distributed import run_episode_payload, task_payload
    from looper_engine.tasks.koans import load_koans

    koan = next(t for t in load_koans() if t.family == "off_by_one")
    shutil.copytree(koan.source_dir, tmp_path / "copy")
    payload = task_payload(koan.model_copy(update={"source_dir": tmp_path / "copy"}))
    assert not payload["builtin"] and payload["files"]
    shutil.rmtree(tmp_path / "copy")  # the worker rebuilds the folder from the payload alone
    out = run_episode_payload({
        "task": payload, "model": "scripted:oracle", "adapter": None, "adapters_dir": None,
        "config": AgentConfig(max_steps=6).model_dump(mode="json"), "system_prompt": "be brief",
        "run_id": "run-x", "episode_id": "ep-chosen",
    })
    assert out["error"] is None and out["result"]["resolved"]
    assert out["result"]["episode_id"] == "ep-chosen"
    assert out["events"][0]["kind"] == "episode_started" and out["events"][-1]["kind"] == "episode_finished"
    assert {e["episode_id"] for e in out["events"]} == {"ep-chosen"}
    assert {e["run_id"] for e in out["events"]} == {"run-x"}
