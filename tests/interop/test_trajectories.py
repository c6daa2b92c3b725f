"""Looper's episodes as mini-swe-agent trajectories, opened by mini-swe-agent's own
inspector, and mini-swe-agent's trajectories recorded as Looper episodes."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from looper_engine.cli import main

TASKS = ["off_by_one/paginate", "dict_set/word_count"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("traj")
    db = d / "looper.db"
    args = ["run", "--db", str(db), "--quiet", "--rate", "0"]
    assert main([*args, *sum((["--tasks", t] for t in TASKS), [])]) == 0
    assert main([*args, "--tasks", TASKS[0], "--model", "scripted:malformed"]) in (0, 1)
    out = d / "trajs"
    assert main(["export", "--db", str(db), "--format", "mini-swe-agent", "--out", str(out)]) == 0
    return {"db": db, "out": out, "files": sorted(out.glob("*.traj.json"))}


def test_one_v2_trajectory_per_episode_with_the_final_diff(recorded: dict) -> None:
    from looper_engine.tasks.suites import load_suite

    (n,) = sqlite3.connect(recorded["db"]).execute("SELECT count(*) FROM episodes").fetchone()
    assert len(recorded["files"]) == n == 3
    suite = {t.id: t for t in load_suite("koans")}
    solved = 0
    for path in recorded["files"]:
        data = json.loads(path.read_text())
        assert data["trajectory_format"] == "mini-swe-agent-1.1"
        info = data["info"]
        assert set(info) >= {"exit_status", "submission", "model_stats", "config"}
        assert info["model_stats"]["api_calls"] == info["looper"]["steps"]
        msgs = data["messages"]
        assert [m["role"] for m in msgs[:2]] == ["system", "user"] and msgs[-1]["role"] == "exit"
        assistant = [m for m in msgs if m["role"] == "assistant"]
        assert len(assistant) == info["looper"]["steps"]
        assert all("step" in m["extra"]["looper"] for m in assistant)
        if info["config"]["model"]["model_name"] == "scripted:malformed":
            assert any(m["extra"]["looper"]["problem"] for m in assistant)
            assert any(m.get("extra", {}).get("interrupt_type") == "FormatError" for m in msgs)
        bash = [m for m in assistant if m["extra"]["looper"]["tool"] == "bash"]
        assert all(m["extra"]["actions"][0]["command"] == m["extra"]["looper"]["call"]["command"] for m in bash)
        if info["looper"]["resolved"]:
            solved += 1
            assert info["exit_status"] == "Submitted"
            # The submission is the episode's diff: applied to the task's source, the tests pass.
            task = suite[info["config"]["environment"]["task_id"]]
            work = path.parent.parent / f"apply-{path.stem}"
            shutil.copytree(task.source_dir, work)
            subprocess.run(["git", "init", "-q"], cwd=work, check=True)
            subprocess.run(["git", "apply", "-"], cwd=work, input=info["submission"], text=True, check=True)
            for edit in task.gold:
                assert edit.new in (work / edit.path).read_text()
    assert solved == 3  # the malformed policy recovers and fixes the bug too


async def test_mini_swe_agent_inspector_opens_every_exported_file(recorded: dict) -> None:
    inspector = pytest.importorskip("minisweagent.run.utilities.inspector")
    from minisweagent.models.utils.content_string import get_content_string

    files = recorded["files"]
    app = inspector.TrajectoryInspector(files)
    async with app.run_test() as pilot:
        for i, path in enumerate(files):
            app.i_trajectory = i
            await pilot.pause()
            data = json.loads(path.read_text())
            assert app.messages == data["messages"], f"{path.name} did not load"
            assert app.n_steps == 1 + data["info"]["looper"]["steps"]
            assert app.title.endswith(f"{path.name} - Step 1/{app.n_steps}")
            app.action_last_step()
            await pilot.pause()
            assert all(isinstance(get_content_string(m), str) for m in app.messages)
        assert not app._notifications


# --- in -----------------------------------------------------------------------------------

SAMPLE = Path(__file__).parent / "data" / "acme__calc-1.traj.json"


def import_and_read(db: Path, path: Path, *extra: str) -> list:
    assert main(["import", "mini-swe-agent", str(path), "--db", str(db), *extra]) == 0
    con = sqlite3.connect(db)
    return con.execute("SELECT id, suite, model_label, status, steps, config FROM episodes").fetchall()


def test_import_records_bash_steps_labelled_with_their_origin(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    ((ep_id, suite, label, status, steps, config),) = import_and_read(db, SAMPLE)
    data = json.loads(SAMPLE.read_text())
    commands = [a["command"] for m in data["messages"] if m["role"] == "assistant" for a in m["extra"]["actions"]]
    assert suite == "mini-swe-agent" and label == "mini-swe-agent: deterministic" and status == "failed"
    assert steps == len(commands)
    assert json.loads(config)["origin"]["source"] == str(SAMPLE)
    con = sqlite3.connect(db)
    rows = con.execute("SELECT tool, call, exit_code FROM steps WHERE episode_id=? ORDER BY step", (ep_id,)).fetchall()
    assert [json.loads(c)["command"] for _, c, _ in rows] == commands
    assert {t for t, _, _ in rows} == {"bash"}
    assert rows[0][2] == 0


def test_imported_episodes_replay_and_pass_the_format_check(tmp_path: Path) -> None:
    import asyncio


    db = tmp_path / "l.db"
    data = json.loads(SAMPLE.read_text())
    instance = SAMPLE.name.split(".")[0]
    folder = tmp_path / "runs"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / SAMPLE.name)
    # A second task (another report, same fix), for the train/valid split.
    second = json.loads(SAMPLE.read_text())
    second["messages"][1]["content"] = "Please solve this issue: clamp ignores its upper bound"
    (folder / "acme__calc-2.traj.json").write_text(json.dumps(second))
    import_and_read(db, folder, "--resolved", instance)
    asyncio.run(_check_imported(db, data, instance))


async def _check_imported(db: Path, data: dict, instance: str) -> None:
    from looper_engine.consolidation.synth import Selection, synthesize
    from looper_engine.store.db import Store
    from looper_engine.store.replay import trajectory_from_events

    store = await Store.open(db, create=False)
    try:
        eps = {ep.task_id: ep for ep in await store.episodes()}
        assert eps[instance].resolved and not eps["acme__calc-2"].resolved
        ep = eps[instance]
        traj = trajectory_from_events(await store.events(ep.id))
        first = traj.steps[0]
        assert first.call == {"tool": "bash", "command": data["messages"][2]["extra"]["actions"][0]["command"]}
        assert first.observation == data["messages"][3]["content"]
        assert [m.role for m in traj.context(2)] == ["system", "user", "assistant", "user"]
        assert traj.finished is not None and traj.finished.patch == data["info"]["submission"]
        selection = Selection(suites=["mini-swe-agent"], resolved_only=False)
        synthesized = await synthesize(store, selection, valid_fraction=0.5)
        assert synthesized.stats.format_ok, synthesized.stats.format_problems
        assert synthesized.stats.tasks == 2
        assert synthesized.stats.samples >= len(traj.steps)
    finally:
        await store.close()


def test_a_fresh_run_of_mini_swe_agent_imports(tmp_path: Path) -> None:
    """mini-swe-agent's own agent and environment write a trajectory; Looper reads it."""
    pytest.importorskip("minisweagent")
    from minisweagent.agents.default import DefaultAgent
    from minisweagent.environments.local import LocalEnvironment
    from minisweagent.models.test_models import DeterministicModel, make_output

    work = tmp_path / "repo"
    work.mkdir()
    (work / "a.txt").write_text("one\n")
    outputs = [
        make_output("Look first.\n```mswea_bash_command\nls\n```", [{"command": "ls"}]),
        make_output("Fix it.\n```mswea_bash_command\necho two > a.txt\n```", [{"command": "echo two > a.txt"}]),
        make_output("Submit.", [{"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && echo done"}]),
    ]
    traj_path = tmp_path / "out" / "acme__x-1.traj.json"
    agent = DefaultAgent(
        DeterministicModel(outputs=outputs), LocalEnvironment(cwd=str(work)),
        system_template="You fix bugs.", instance_template="{{task}}", output_path=traj_path, step_limit=10,
    )
    result = agent.run("a.txt should say two")
    assert result["exit_status"] == "Submitted"
    rows = import_and_read(tmp_path / "l.db", traj_path.parent)
    assert [r[4] for r in rows] == [3]
    assert (work / "a.txt").read_text() == "two\n"


def test_bad_trajectories_are_one_line_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / "good.traj.json")
    (folder / "bad.traj.json").write_text('{"info": {}}')
    db = tmp_path / "l.db"
    assert main(["import", "mini-swe-agent", str(folder), "--db", str(db)]) == 2
    assert "not a mini-swe-agent trajectory" in capsys.readouterr().err
    assert main(["import", "mini-swe-agent", str(tmp_path / "none"), "--db", str(db)]) == 2
    assert sqlite3.connect(db).execute("SELECT count(*) FROM episodes").fetchone() == (0,)


async def test_an_imported_episode_steps_through_in_the_tui_history(tmp_path: Path, monkeypatch) -> None:
    import asyncio
    import sys

    monkeypatch.setenv("LOOPER_CONFIG_DIR", str(tmp_path / "config"))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tui"))
    from textual.widgets import Static
    from tui_helpers import make_app, wait_until

    from looper_tui.screens.history import HistoryScreen

    db = tmp_path / "l.db"
    ((ep_id, *_),) = await asyncio.to_thread(import_and_read, db, SAMPLE)
    app = make_app(tmp_path, db)

    def output() -> str:
        content = app.screen.query_one("#detail-output", Static).content
        return getattr(content, "plain", str(content))

    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.show_history(ep_id, step=1)
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.record is not None)
        assert "<bash>cat ops.py</bash>" in output()
        await pilot.press("right")
        await wait_until(pilot, lambda: app.screen.record.step == 2)
        assert "sed -i" in output()
