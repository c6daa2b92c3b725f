"""A whole koan experiment with scripted arms, whose numbers can be checked by hand: the
zero-shot reference (scripted:wrong-fix) solves nothing, the framework arm (scripted:oracle)
solves everything, and a memory+prompt-skill arm learns every night (its prompts change, its
policy does not). Then the same experiment killed at a random point and resumed."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from looper_engine.evaluation.cycle import CycleProgress, ExperimentRunner
from looper_engine.evaluation.experiment import parse_experiment, plan_experiment
from looper_engine.evaluation.report import SECTIONS, write_report
from looper_engine.evaluation.results import ExperimentResults, load_results
from looper_engine.store.db import Store

SPEC = """
name = "scripted"
model = "scripted:wrong-fix"
chunk_size = 2
[stream]
families = ["off_by_one", "wrong_operator", "string_format"]
per_family = 2
[heldout]
families = ["numeric"]
per_family = 1
[limits]
max_steps = 6
concurrency = 2
[[arms]]
name = "base"
[[arms]]
name = "oracle"
kind = "framework"
model = "scripted:oracle"
off = ["loop_detection"]
[[arms]]
name = "memory"
kind = "memory+prompt-skill"
"""


async def run(db: Path, tmp: Path, progress: list[CycleProgress] | None = None) -> Any:
    plan = plan_experiment(parse_experiment(SPEC, "exp.toml"), "exp.toml")
    runner = ExperimentRunner(plan, db, adapters_dir=tmp / "adapters",
                              on_progress=progress.append if progress is not None else None)
    return await runner.run()


async def results_of(db: Path) -> ExperimentResults:
    store = await Store.open(db, create=False)
    try:
        return await load_results(store, "scripted")
    finally:
        await store.close()


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("cycle")
    db = tmp / "lab.db"
    progress: list[CycleProgress] = []
    outcome = asyncio.run(run(db, tmp, progress))
    return {"db": db, "tmp": tmp, "outcome": outcome, "progress": progress, "results": asyncio.run(results_of(db))}


def test_the_oracle_arm_numbers_match_a_hand_count(done: dict[str, Any]) -> None:
    r: ExperimentResults = done["results"]
    assert done["outcome"].status == "finished"
    assert r.zero_shot == [0.0, 0.0, 0.0]
    oracle = r.arm("oracle")
    # Evaluated after each chunk on every chunk seen and the next one; nothing further right.
    assert oracle.matrix == [[1.0, 1.0, None], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    assert oracle.counts[2] == [(2, 2), (2, 2), (2, 2)]
    s = {k: v.value for k, v in oracle.summary.items()}
    assert s["acc"] == 1.0 and s["forgetting"] == 0.0 and s["backward_transfer"] == 0.0
    assert s["forward_transfer"] == 1.0  # a[i][i+1] - z[i+1] = 1 - 0 on both pairs
    assert s["aulc"] == 1.0 and s["cl_f_beta"] == 1.0
    stream = next(c for c in oracle.vs_base if c.scope == "stream")
    # 6 tasks only the arm solves, one seed each: the sign-flip test is exact McNemar,
    # two-sided p = 2 * 0.5**6, and the arm cannot be worse: p_worse = 1.
    assert (stream.n_tasks, stream.worse, stream.better, stream.p_value) == (6, 0, 6, 0.03125)
    assert stream.p_worse == 1.0 and stream.design == "6 tasks x 1 seed"
    # Yet 6 tasks are too few to promise anything: most experiments of this size see some ties.
    assert stream.min_detectable is None
    assert [f.change for f in oracle.flips] == ["fixed"] * 7
    assert oracle.heldout[-1] is not None and oracle.heldout[-1].k == 1
    assert oracle.pass_at == {1: 1.0}
    assert oracle.episodes is not None and oracle.episodes.steps_to_resolve.mean == 4.0
    assert oracle.episodes.tool_calls_per_resolve.mean == 3.0  # read, edit, bash; done is no tool call


def test_the_base_arm_learns_nothing_and_repeats_its_errors(done: dict[str, Any]) -> None:
    base = done["results"].arm("base")
    assert base.summary["acc"].value == 0.0 and base.summary["forward_transfer"].value == 0.0
    assert base.nights == []
    assert base.repeat_errors is not None and base.repeat_errors.k == base.repeat_errors.n == 7


def test_a_condition_is_measured_once(done: dict[str, Any]) -> None:
    con = sqlite3.connect(done["db"])
    # The base arm's model and config are the zero-shot reference's: every cell reuses its episodes.
    ran = con.execute("SELECT count(*) FROM exp_cells WHERE arm='base' AND reused=0").fetchone()[0]
    assert ran == 0
    # A static arm runs each task once, however many cycles evaluate it.
    n = con.execute("SELECT count(DISTINCT episode_id) FROM exp_cells WHERE arm='oracle'").fetchone()[0]
    assert n == 7
    cells = con.execute("SELECT count(*) FROM exp_cells WHERE arm='oracle' AND phase='eval'").fetchone()[0]
    assert cells == (4 + 1) + (6 + 1) + (6 + 1)
    # No two episodes measured the same conditions.
    dup = con.execute(
        "SELECT count(*) FROM (SELECT fingerprint, task_id, seed FROM exp_cells "
        "GROUP BY fingerprint, task_id, seed HAVING count(DISTINCT episode_id) > 1)"
    ).fetchone()[0]
    assert dup == 0


def test_memory_and_rules_reach_the_prompt_after_a_night(done: dict[str, Any]) -> None:
    r: ExperimentResults = done["results"]
    memory = r.arm("memory")
    assert [(n.cycle, n.adopted, n.n) for n in memory.nights] == [(0, True, 2), (1, True, 4), (2, True, 6)]
    # 2 and 4 frozen tasks cannot reach p < 0.05 even if all are lost: adopted, but untested.
    assert [n.testable for n in memory.nights] == [False, False, True]
    assert all("adopted untested: " in n.reason for n in memory.nights[:2])
    assert "same outcome" in memory.nights[2].reason
    assert [n.memory for n in memory.nights] == [2, 4, 6]
    assert memory.nights[0].rules and "<done> only once it passes" in memory.nights[0].rules[0]
    con = sqlite3.connect(done["db"])
    (episode,) = con.execute(
        "SELECT episode_id FROM exp_cells WHERE arm='memory' AND phase='eval' AND cycle=1 "
        "AND task_id='string_format/csv_quotes'"
    ).fetchone()
    (data,) = con.execute(
        "SELECT data FROM events WHERE episode_id=? AND kind='episode_started'", (episode,)
    ).fetchone()
    assert "Lessons from your earlier tasks in this repository:" in data
    assert "Notes from your earlier episodes in this repository" in data
    assert "Finished while the tests still failed" in data  # a reflection on an earlier failure


def test_progress_reports_every_unit_and_each_night(done: dict[str, Any]) -> None:
    progress: list[CycleProgress] = done["progress"]
    cells = [p for p in progress if p.kind == "cell"]
    assert cells[-1].done == cells[-1].total == len(cells)
    assert [p.cycle for p in progress if p.kind == "night"] == [0, 1, 2]
    assert progress[-1].kind == "finished"


def test_the_report_has_every_section_and_its_plots(done: dict[str, Any]) -> None:
    out = done["tmp"] / "report"
    path = write_report(done["results"], out)
    text = path.read_text()
    for section in SECTIONS:
        assert f"## {section}" in text, section
    for arm in ("base", "oracle", "memory"):
        assert (out / f"matrix-{arm}.png").read_bytes().startswith(b"\x89PNG")
    assert "| oracle | stream | 6 tasks x 1 seed | 0% | 100% | +100% [" in text and "| 6 | 0 | 0.0312 |" in text
    assert "scripted policies take part" in text.lower()
    assert "| memory | 0 | 1 | yes (untested) | 2 |" in text and "| memory | 0 | 3 | yes | 6 |" in text
    assert "(6 tasks x 1 seed) this design" in text  # the power figures open the report


def test_running_a_finished_experiment_again_runs_nothing(done: dict[str, Any]) -> None:
    before = sqlite3.connect(done["db"]).execute("SELECT count(*) FROM episodes").fetchone()[0]
    again = asyncio.run(run(done["db"], done["tmp"]))
    assert again.ran == 0 and again.reused == 0 and again.recorded > 0
    after = sqlite3.connect(done["db"]).execute("SELECT count(*) FROM episodes").fetchone()[0]
    assert after == before


# --- killed and resumed -------------------------------------------------------------------------


def command(tmp: Path, db: Path) -> list[str]:
    return [sys.executable, "-m", "looper_engine.cli", "experiment", "run", str(tmp / "exp.toml"),
            "--db", str(db), "--adapters", str(tmp / "adapters"), "--quiet"]


def cells_of(db: Path) -> dict[tuple[Any, ...], tuple[str, bool]]:
    con = sqlite3.connect(db)
    rows = con.execute("SELECT arm, seed, cycle, phase, chunk, task_id, episode_id, resolved FROM exp_cells").fetchall()
    con.close()
    return {r[:6]: (r[6], bool(r[7])) for r in rows}


def comparable(r: ExperimentResults) -> dict[str, Any]:
    return {
        "z": r.zero_shot,
        **{a.arm: (a.matrix, a.counts, [(n.cycle, n.adopted, n.b, n.c) for n in a.nights]) for a in r.arms},
    }


def test_a_run_killed_at_a_random_point_resumes_to_the_same_results(tmp_path: Path, done: dict[str, Any]) -> None:
    """SIGKILL (no chance to clean up) at a random point; `looper experiment run FILE` again
    continues: the same results as the uninterrupted run, and nothing that finished re-run."""
    (tmp_path / "exp.toml").write_text(SPEC)
    db = tmp_path / "lab.db"
    seed = int(os.environ.get("LOOPER_KILL_SEED", str(time.time_ns() % 100_000)))
    # The uninterrupted run took `seconds` in-process; a subprocess also starts Python first.
    delay = 1.0 + random.Random(seed).uniform(0.2, 0.8) * done["outcome"].seconds
    errors = tmp_path / "first-run.stderr"
    with errors.open("wb") as err:
        proc = subprocess.Popen(command(tmp_path, db), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    why = f"(kill seed {seed}: SIGKILL after {delay:.1f}s)"
    assert proc.returncode == -signal.SIGKILL, (
        f"the run ended before the kill {why}, exit {proc.returncode}: {errors.read_text()[-2000:]}"
    )
    reference = cells_of(done["db"])
    before = cells_of(db) if db.exists() else {}
    assert len(before) < len(reference), why

    r = subprocess.run(command(tmp_path, db), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    after = cells_of(db)
    # Every cell recorded before the kill still points at the same episode: nothing re-run.
    for key, value in before.items():
        assert after[key] == value, f"{key} was measured again {why}"
    # The same cells with the same outcomes as the uninterrupted run, the same matrices,
    # zero-shot rates and gate verdicts.
    assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in reference.items()}, why
    assert comparable(asyncio.run(results_of(db))) == comparable(done["results"]), why
    # Apart from episodes the kill interrupted, exactly one episode per distinct measurement.
    con = sqlite3.connect(db)
    statuses = dict(con.execute("SELECT id, status FROM episodes").fetchall())
    measured = {episode for episode, _ in after.values()}
    assert {e for e, s in statuses.items() if s in ("resolved", "failed")} == measured, why
    assert all(s == "interrupted" for e, s in statuses.items() if e not in measured), why
    assert len(measured) == len({e for e, _ in reference.values()}), why


def test_the_json_report_gives_the_same_figures_as_data(done: dict[str, Any],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from looper_engine.cli import main
    from looper_engine.evaluation.report import ReportJSON

    assert main(["report", "scripted", "--db", str(done["db"]), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) >= {"arms", "comparisons", "power"}
    ReportJSON.model_validate(data)
    r: ExperimentResults = done["results"]
    oracle = data["arms"]["oracle"]
    assert oracle["matrix"]["cells"][0][2] is None  # a[0][2] was never measured
    assert oracle["matrix"]["cells"][2][1] == {"rate": 1.0, "k": 2, "n": 2}
    assert oracle["matrix"]["zero_shot"] == [{"rate": 0.0, "k": 0, "n": 2}] * 3
    assert set(oracle["metrics"]) == {"acc", "forgetting", "fwt", "bwt", "aulc", "cl_p", "cl_s", "cl_f1"}
    acc = oracle["metrics"]["acc"]
    assert (acc["value"], acc["n_tasks"]) == (r.arm("oracle").summary["acc"].value, 6)
    assert set(acc) >= {"value", "lo", "hi", "n_tasks"}
    stream = next(c for c in data["comparisons"] if c["arm_name"] == "oracle" and c["scope"] == "stream")
    expected = next(c for c in r.arm("oracle").vs_base if c.scope == "stream")
    for key in ("n_tasks", "base_rate", "arm_rate", "diff", "diff_lo", "diff_hi", "p_value", "p_worse",
                "min_detectable"):
        assert stream[key] == getattr(expected, key), key
    assert {c["arm"] for c in data["power"]["comparisons"]} == {"base", "oracle", "memory"}
    assert [f["change"] for f in oracle["flips"]] == ["fixed"] * 7
    assert [n["testable"] for n in data["arms"]["memory"]["nights"]] == [False, False, True]
