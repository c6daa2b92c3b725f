"""SWE-Bench-CL: the curriculum loader and the harness, on git repositories built here in the
SWE-bench layout (a base commit, a test patch adding a failing test, a gold patch)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from looper_engine.errors import UserError
from looper_engine.tasks.swebench_cl import (
    SweTask,
    apply_patch,
    curriculum_tasks,
    load_curriculum,
    parse_pytest_output,
    parse_unittest_output,
    plan_tests,
    prepare_swe_workspace,
    remove_worktree,
    run_swe_tests,
    to_task,
)

SAMPLE = Path("/work/shared/data/swe-bench-cl/format-sample.json")


@pytest.fixture(autouse=True)
def _bare_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    # The tiny repositories here need no pytest plugins; loading this environment's (Textual
    # snapshots among them) would make every scored run several times slower.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def diff_of(repo: Path, files: dict[str, str]) -> str:
    """The patch that turns the checked-out files into `files` (the tree is restored after)."""
    write(repo, files)
    git(repo, "add", "-A")
    patch = git(repo, "diff", "--cached")
    git(repo, "reset", "-q", "--hard")
    return patch


def make_repo(clone: Path, base_files: dict[str, str]) -> str:
    clone.mkdir(parents=True)
    git(clone, "init", "-q")
    write(clone, base_files)
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", "base")
    base = git(clone, "rev-parse", "HEAD").strip()
    # A later commit, so that a checkout of HEAD instead of the base commit would show.
    write(clone, {"LATER.txt": "after the base commit\n"})
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", "later")
    return base


OPS = "def add(a, b):\n    return a + b\n\n\ndef clamp(x, lo, hi):\n    return max(lo, min(x, lo))\n"
OPS_FIXED = OPS.replace("min(x, lo)", "min(x, hi)")
TESTS = "from calc.ops import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
TESTS_NEW = (
    "from calc.ops import add, clamp\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
    "def test_clamp_high():\n    assert clamp(5, 0, 10) == 5\n"
)


def swe_task(
    repo: str, base: str, test_patch: str, patch: str, f2p: list[str], p2p: list[str], **extra: Any
) -> SweTask:
    return SweTask.model_validate(
        {
            "metadata": {"instance_id": f"{repo.replace('/', '__')}-1", "repo": repo, "base_commit": base},
            "task": {"problem_statement": "clamp ignores hi", "hints_text": "look at clamp"},
            "evaluation": {
                "patch": patch,
                "test_patch": test_patch,
                "FAIL_TO_PASS": f2p,
                "PASS_TO_PASS": p2p,
            },
            "continual_learning": {"sequence_position": 1, "modified_files": ["calc/ops.py"], **extra},
        }
    )


@pytest.fixture
def calc(tmp_path: Path) -> tuple[Path, SweTask]:
    """acme/calc in repos_dir as acme__calc, with pytest-style ids."""
    repos = tmp_path / "repos"
    clone = repos / "acme__calc"
    base = make_repo(clone, {"calc/__init__.py": "", "calc/ops.py": OPS, "tests/test_ops.py": TESTS})
    git(clone, "checkout", "-q", base)
    test_patch = diff_of(clone, {"tests/test_ops.py": TESTS_NEW})
    gold = diff_of(clone, {"calc/ops.py": OPS_FIXED})
    git(clone, "checkout", "-q", "-")
    task = swe_task(
        "acme/calc",
        base,
        test_patch,
        gold,
        ["tests/test_ops.py::test_clamp_high"],
        ["tests/test_ops.py::test_add"],
    )
    return repos, task


def statuses(score: Any) -> dict[str, str]:
    return {r.test_id: r.status for r in score.results}


async def test_workspace_is_the_base_commit_with_the_test_patch(
    calc: tuple[Path, SweTask], tmp_path: Path
) -> None:
    repos, task = calc
    ws = await prepare_swe_workspace(task, repos, tmp_path / "ws")
    assert ws == tmp_path / "ws"
    assert not (ws / "LATER.txt").exists()
    assert "test_clamp_high" in (ws / "tests/test_ops.py").read_text()
    assert (ws / "calc/ops.py").read_text() == OPS


async def test_fail_to_pass_fails_at_base_and_passes_after_the_gold_patch(
    calc: tuple[Path, SweTask], tmp_path: Path
) -> None:
    repos, task = calc
    ws = await prepare_swe_workspace(task, repos, tmp_path / "ws")
    before = await run_swe_tests(task, ws, timeout_s=120)
    assert not before.resolved
    assert statuses(before) == {
        "tests/test_ops.py::test_clamp_high": "failed",
        "tests/test_ops.py::test_add": "passed",
    }
    assert before.error_signature() == "failed:tests/test_ops.py::test_clamp_high"
    assert before.to_score().tests_failed == 1

    await apply_patch(ws, task.evaluation.patch)
    after = await run_swe_tests(task, ws, timeout_s=120)
    assert after.resolved
    assert all(r.ok for r in after.results)
    score = after.to_score()
    assert score.resolved and score.tests_passed == 2 and score.error_signature == ""


async def test_scoring_applies_a_missing_test_patch(calc: tuple[Path, SweTask], tmp_path: Path) -> None:
    repos, task = calc
    ws = await prepare_swe_workspace(task, repos, tmp_path / "ws", apply_test_patch=False)
    assert "test_clamp_high" not in (ws / "tests/test_ops.py").read_text()
    await apply_patch(ws, task.evaluation.patch)
    score = await run_swe_tests(task, ws, timeout_s=120)
    assert score.resolved
    # applied once, not twice
    assert (ws / "tests/test_ops.py").read_text() == TESTS_NEW


async def test_a_test_that_never_ran_is_missing_and_fails_the_task(
    calc: tuple[Path, SweTask], tmp_path: Path
) -> None:
    repos, task = calc
    ws = await prepare_swe_workspace(task, repos, tmp_path / "ws")
    await apply_patch(ws, task.evaluation.patch)
    ghost = task.model_copy(deep=True)
    ghost.evaluation.PASS_TO_PASS.append("tests/test_ops.py::test_gone")
    score = await run_swe_tests(ghost, ws, timeout_s=120)
    assert statuses(score)["tests/test_ops.py::test_gone"] == "missing"
    assert not score.resolved


async def test_missing_clone_names_the_paths_looked_for(calc: tuple[Path, SweTask], tmp_path: Path) -> None:
    _, task = calc
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(UserError) as err:
        await prepare_swe_workspace(task, empty, tmp_path / "ws")
    msg = str(err.value)
    assert str(empty / "acme__calc") in msg and str(empty / "calc") in msg


async def test_a_clone_under_the_plain_repo_name_is_found(calc: tuple[Path, SweTask], tmp_path: Path) -> None:
    repos, task = calc
    (repos / "acme__calc").rename(repos / "calc")
    ws = await prepare_swe_workspace(task, repos, tmp_path / "ws")
    assert (ws / "calc/ops.py").is_file()


async def test_unknown_base_commit_is_a_user_error(calc: tuple[Path, SweTask], tmp_path: Path) -> None:
    repos, task = calc
    bad = task.model_copy(deep=True)
    bad.metadata.base_commit = "0" * 40
    with pytest.raises(UserError, match="cannot check out"):
        await prepare_swe_workspace(bad, repos, tmp_path / "ws")


async def test_a_test_patch_that_does_not_apply_leaves_no_worktree(
    calc: tuple[Path, SweTask], tmp_path: Path
) -> None:
    repos, task = calc
    bad = task.model_copy(deep=True)
    bad.evaluation.test_patch = bad.evaluation.test_patch.replace(
        "def test_add", "def test_nothing_like_this"
    )
    with pytest.raises(UserError, match="does not apply"):
        await prepare_swe_workspace(bad, repos, tmp_path / "ws")
    assert not (tmp_path / "ws").exists()
    assert str(tmp_path / "ws") not in git(repos / "acme__calc", "worktree", "list")


async def test_remove_worktree_deletes_it_and_its_registration(
    calc: tuple[Path, SweTask], tmp_path: Path
) -> None:
    repos, task = calc
    ws = await prepare_swe_workspace(task, repos, tmp_path / "ws")
    (ws / "scratch.txt").write_text("agent notes")
    assert str(ws) in git(repos / "acme__calc", "worktree", "list")
    await remove_worktree(ws)
    assert not ws.exists()
    assert str(ws) not in git(repos / "acme__calc", "worktree", "list")
    await remove_worktree(ws)  # already gone: nothing to do


async def test_to_task_runs_the_same_tests_through_its_test_command(
    calc: tuple[Path, SweTask], tmp_path: Path
) -> None:
    repos, task = calc
    ws = await prepare_swe_workspace(task, repos, tmp_path / "ws")
    t = to_task(task, ws)
    assert (t.suite, t.family, t.repo, t.gold) == ("swe-bench-cl", "acme/calc", "acme/calc", [])
    assert t.id == "swe-bench-cl/acme__calc-1"
    assert t.statement.startswith("clamp ignores hi") and "look at clamp" in t.statement
    assert "look at clamp" not in to_task(task, ws, include_hints=False).statement
    assert t.target_files == ["calc/ops.py"] and t.source_dir == ws
    argv = [sys.executable if a == "{python}" else a for a in t.test_command]
    assert "tests/test_ops.py::test_clamp_high" in argv
    assert subprocess.run(argv, cwd=ws, capture_output=True).returncode != 0
    await apply_patch(ws, task.evaluation.patch)
    assert subprocess.run(argv, cwd=ws, capture_output=True).returncode == 0


async def test_bare_test_names_run_the_test_files_of_the_test_patch(
    calc: tuple[Path, SweTask], tmp_path: Path
) -> None:
    repos, task = calc
    sympy_like = task.model_copy(deep=True)
    sympy_like.evaluation.FAIL_TO_PASS = ["test_clamp_high"]
    sympy_like.evaluation.PASS_TO_PASS = ["test_add"]
    assert plan_tests(sympy_like).argv[-1] == "tests/test_ops.py"
    ws = await prepare_swe_workspace(sympy_like, repos, tmp_path / "ws")
    before = await run_swe_tests(sympy_like, ws, timeout_s=120)
    assert statuses(before) == {"test_clamp_high": "failed", "test_add": "passed"}
    await apply_patch(ws, task.evaluation.patch)
    assert (await run_swe_tests(sympy_like, ws, timeout_s=120)).resolved


async def test_an_id_cut_short_runs_its_file_and_is_graded_by_prefix(
    calc: tuple[Path, SweTask], tmp_path: Path
) -> None:
    repos, task = calc
    cut = task.model_copy(deep=True)
    # SWE-bench logs cut parametrised ids at the first space; pytest refuses such an id.
    cut.evaluation.test_patch = diff_of(
        repos / "acme__calc",
        {
            "tests/test_ops.py": TESTS_NEW + "\n\nimport pytest\n\n\n@pytest.mark.parametrize('x', ['a b'])\n"
            "def test_words(x):\n    assert ' ' in x\n"
        },
    )
    cut.evaluation.PASS_TO_PASS = ["tests/test_ops.py::test_add", "tests/test_ops.py::test_words[a"]
    assert plan_tests(cut).argv[-3:] == [
        "tests/test_ops.py::test_clamp_high",
        "tests/test_ops.py::test_add",
        "tests/test_ops.py",
    ]
    ws = await prepare_swe_workspace(cut, repos, tmp_path / "ws")
    await apply_patch(ws, task.evaluation.patch)
    score = await run_swe_tests(cut, ws, timeout_s=120)
    assert statuses(score)["tests/test_ops.py::test_words[a"] == "passed"
    assert score.resolved


async def test_a_run_past_its_timeout_is_killed_and_not_resolved(
    calc: tuple[Path, SweTask], tmp_path: Path
) -> None:
    repos, task = calc
    ws = await prepare_swe_workspace(task, repos, tmp_path / "ws")
    await apply_patch(ws, task.evaluation.patch)
    (ws / "tests/conftest.py").write_text(
        "import time\n\n\ndef pytest_sessionstart(session):\n    time.sleep(600)\n"
    )
    score = await run_swe_tests(task, ws, timeout_s=1)
    assert score.timed_out and not score.resolved and score.exit_code is None
    assert score.error_signature() == "timeout"


async def test_a_process_left_running_by_the_tests_neither_hangs_scoring_nor_survives_it(
    calc: tuple[Path, SweTask], tmp_path: Path
) -> None:
    repos, task = calc
    ws = await prepare_swe_workspace(task, repos, tmp_path / "ws")
    await apply_patch(ws, task.evaluation.patch)
    pid_file = tmp_path / "server.pid"
    # A conftest that starts a "server" sharing the test run's output and never stops it.
    (ws / "tests/conftest.py").write_text(
        "import pathlib, subprocess, sys\n\n\ndef pytest_sessionstart(session):\n"
        "    p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"    pathlib.Path({str(pid_file)!r}).write_text(str(p.pid))\n"
    )
    # Unconfined, so the pid file (outside the workspace) is written and names a host process.
    score = await run_swe_tests(task, ws, timeout_s=120, sandbox_mode="none")
    assert score.resolved and not score.timed_out
    pid = int(pid_file.read_text())
    for _ in range(100):  # SIGKILL is delivered asynchronously; it is gone within moments
        state = Path(f"/proc/{pid}/stat")
        if not state.exists() or state.read_text().split(") ", 1)[1].startswith("Z"):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail(f"the server process {pid} outlived the test run")


async def test_the_harness_runs_the_tests_in_the_sandbox_by_default(calc: tuple[Path, SweTask], tmp_path: Path) -> None:
    from looper_engine.sandbox import SandboxUnavailable, resolve_mode

    try:
        resolve_mode("auto")
    except SandboxUnavailable as exc:
        pytest.skip(str(exc))
    repos, task = calc
    ws = await prepare_swe_workspace(task, repos, tmp_path / "ws")
    await apply_patch(ws, task.evaluation.patch)
    outside = tmp_path / "written-by-conftest.txt"
    (ws / "tests/conftest.py").write_text(f"import pathlib\npathlib.Path({str(outside)!r}).write_text('pwned')\n")
    score = await run_swe_tests(task, ws, timeout_s=120)
    assert score.resolved  # the tests ran, inside
    assert not outside.exists()  # and their write stayed in the sandbox's private /tmp


# --- Django- and unittest-style ids ------------------------------------------------------

RUNTESTS = '''"""Stands in for Django's tests/runtests.py: labels relative to tests/, verbose output."""
import argparse, os, sys, unittest
here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [here, os.path.dirname(here)]
p = argparse.ArgumentParser()
p.add_argument("--verbosity", type=int, default=1)
p.add_argument("--parallel", default="1")
p.add_argument("labels", nargs="*")
a = p.parse_args()
suite = unittest.defaultTestLoader.loadTestsFromNames(a.labels)
ok = unittest.TextTestRunner(verbosity=a.verbosity).run(suite).wasSuccessful()
sys.exit(0 if ok else 1)
'''
DJ_TESTS = (
    "import unittest\nfrom calc.ops import add\n\n\nclass OpsTests(unittest.TestCase):\n"
    "    def test_add(self):\n        '''Adding two numbers works.'''\n        self.assertEqual(add(2, 3), 5)\n"
)
DJ_TESTS_NEW = DJ_TESTS + (
    "\n    def test_clamp_high(self):\n        from calc.ops import clamp\n        self.assertEqual(clamp(5, 0, 10), 5)\n"
)


async def test_django_style_ids_and_docstring_ids(tmp_path: Path) -> None:
    repos = tmp_path / "repos"
    clone = repos / "django__django"
    base = make_repo(
        clone,
        {
            "calc/__init__.py": "",
            "calc/ops.py": OPS,
            "tests/runtests.py": RUNTESTS,
            "tests/calc_tests/__init__.py": "",
            "tests/calc_tests/tests.py": DJ_TESTS,
        },
    )
    git(clone, "checkout", "-q", base)
    test_patch = diff_of(clone, {"tests/calc_tests/tests.py": DJ_TESTS_NEW})
    gold = diff_of(clone, {"calc/ops.py": OPS_FIXED})
    task = swe_task(
        "django/django",
        base,
        test_patch,
        gold,
        ["test_clamp_high (calc_tests.tests.OpsTests)"],
        ["Adding two numbers works."],
    )
    ws = await prepare_swe_workspace(task, repos, tmp_path / "ws")
    plan = plan_tests(task, "python", ws)
    assert plan.style == "django"
    # the docstring id cannot be a label, so its module runs whole (and covers the named test)
    assert plan.argv == [
        "python",
        "tests/runtests.py",
        "--verbosity",
        "2",
        "--parallel",
        "1",
        "calc_tests.tests",
    ]
    before = await run_swe_tests(task, ws, timeout_s=120)
    assert statuses(before) == {
        "test_clamp_high (calc_tests.tests.OpsTests)": "failed",
        "Adding two numbers works.": "passed",
    }
    await apply_patch(ws, gold)
    assert (await run_swe_tests(task, ws, timeout_s=120)).resolved


@pytest.mark.skipif(not SAMPLE.is_file(), reason="the SWE-Bench-CL format sample is not on this machine")
async def test_format_sample_end_to_end(tmp_path: Path) -> None:
    """The one task of the sample, against a repository rebuilt from its diffs' context lines,
    with `initial_state` (its base_commit) as a tag. Its test ids are dotted unittest ids and
    its test patch's hunk counts are wrong, which `git apply --recount` forgives."""
    (task,) = curriculum_tasks(load_curriculum(SAMPLE))
    repos = tmp_path / "repos"
    clone = repos / "local__dummy_math_project"
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
    ws = await prepare_swe_workspace(task, repos, tmp_path / "ws")
    before = await run_swe_tests(task, ws, timeout_s=120)
    assert before.style == "unittest"
    assert statuses(before) == {
        "test_math_utils.TestMath.test_addition": "failed",
        "test_math_utils.TestMath.test_existing_behavior": "passed",
    }
    await apply_patch(ws, task.evaluation.patch)
    assert (await run_swe_tests(task, ws, timeout_s=120)).resolved
    await remove_worktree(ws)


# --- the curriculum file -----------------------------------------------------------------


@pytest.mark.skipif(not SAMPLE.is_file(), reason="the SWE-Bench-CL format sample is not on this machine")
def test_loads_the_format_sample() -> None:
    c = load_curriculum(SAMPLE)
    assert [s.id for s in c.sequences] == ["dummy_math_project_sequence"]
    (task,) = c.sequences[0].tasks
    assert task.instance_id == "local__dummy_math_project_task_1"
    assert task.repo == "local/dummy_math_project"
    assert task.metadata.base_commit == "initial_state"
    assert task.evaluation.FAIL_TO_PASS == ["test_math_utils.TestMath.test_addition"]
    assert task.continual_learning.modified_files == ["math_utils.py"]
    assert "return a + b" in task.evaluation.patch
    assert to_task(task, Path("/nowhere")).difficulty == 1


def curriculum_json(tasks_by_seq: dict[str, list[tuple[str, int, str]]]) -> dict[str, Any]:
    seqs = []
    for seq_id, tasks in tasks_by_seq.items():
        repo = f"{seq_id}/{seq_id}"
        seqs.append(
            {
                "id": f"{seq_id}_sequence",
                "repo": repo,
                "unexpected": {"extra": "fields are fine"},
                "tasks": [
                    {
                        "metadata": {
                            "instance_id": iid,
                            "repo": repo,
                            "base_commit": "abc",
                            "created_at": created,
                        },
                        "task": {"problem_statement": "p", "hints_text": None},
                        "evaluation": {
                            "patch": "",
                            "test_patch": "",
                            "FAIL_TO_PASS": '["t::a"]',
                            "PASS_TO_PASS": "[]",
                        },
                        "continual_learning": {"sequence_position": pos, "difficulty_score": 2},
                    }
                    for iid, pos, created in tasks
                ],
            }
        )
    return {"metadata": {"name": "x"}, "sequences": seqs}


def test_tasks_come_in_chronological_order_per_chosen_sequence(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            curriculum_json(
                {
                    "django": [("d-3", 3, "2020"), ("d-1", 1, "2018"), ("d-2", 2, "2019")],
                    "sympy": [("s-2", 2, "2021-02"), ("s-1b", 1, "2021-01-02"), ("s-1a", 1, "2021-01-01")],
                }
            )
        )
    )
    c = load_curriculum(path)
    assert [t.instance_id for t in curriculum_tasks(c)] == ["d-1", "d-2", "d-3", "s-1a", "s-1b", "s-2"]
    chosen = curriculum_tasks(c, ["sympy", "django/django"])
    assert [t.instance_id for t in chosen] == ["s-1a", "s-1b", "s-2", "d-1", "d-2", "d-3"]
    assert chosen[0].sequence_id == "sympy_sequence"
    assert chosen[0].evaluation.FAIL_TO_PASS == ["t::a"]  # a JSON-encoded list, as SWE-bench stores it
    assert [t.instance_id for t in curriculum_tasks(c, ["django_sequence"])] == ["d-1", "d-2", "d-3"]
    with pytest.raises(UserError, match="no SWE-Bench-CL sequence 'astropy'.*django_sequence"):
        curriculum_tasks(c, ["astropy"])


def test_loader_errors_are_one_line_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_curriculum(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"sequences": [\n  {"id": }\n]}')
    with pytest.raises(UserError, match=r"not valid JSON \(line 2"):
        load_curriculum(broken)
    data = curriculum_json({"django": [("d-1", 1, "2018")]})
    del data["sequences"][0]["tasks"][0]["metadata"]["base_commit"]
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(data))
    with pytest.raises(UserError) as err:
        load_curriculum(wrong)
    assert "sequences[0].tasks[0].metadata.base_commit" in str(err.value)
    assert "\n" not in str(err.value)


# --- reading test output -----------------------------------------------------------------


def test_pytest_output_takes_the_worse_report_and_ignores_anonymous_skips() -> None:
    out = "\n".join(
        [
            "tests/test_a.py::test_one PASSED                                  [ 33%]",
            "tests/test_a.py::test_one ERROR                                   [ 33%]",
            "tests/test_a.py::test_two[a b] PASSED                             [ 66%]",
            "=========================== short test summary info ============================",
            "PASSED tests/test_a.py::test_two[a b]",
            "ERROR tests/test_a.py::test_one - RuntimeError: teardown",
            "FAILED tests/test_a.py::test_three - assert 1 == 2",
            "SKIPPED [1] tests/test_a.py:9: no network",
            "XFAIL tests/test_a.py::test_four - known bug",
        ]
    )
    assert parse_pytest_output(out) == {
        "tests/test_a.py::test_one": "error",
        "tests/test_a.py::test_two[a b]": "passed",
        "tests/test_a.py::test_three": "failed",
        "tests/test_a.py::test_four": "xfail",
    }


def test_unittest_output_in_old_and_new_python_formats() -> None:
    out = "\n".join(
        [
            "test_a (app.tests.T) ... ok",
            "test_b (app.tests.T.test_b) ... FAIL",
            "test_c (app.tests.T.test_c)",
            "The c docstring. ... ERROR",
            "test_d (app.tests.T) ... skipped 'no db'",
            "test_e (app.tests.T) ... expected failure",
        ]
    )
    assert parse_unittest_output(out) == {
        "app.tests.T.test_a": "passed",
        "app.tests.T.test_b": "failed",
        "The c docstring.": "error",
        "app.tests.T.test_c": "error",
        "app.tests.T.test_d": "skipped",
        "app.tests.T.test_e": "xfail",
    }
