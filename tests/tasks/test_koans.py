"""The built-in koan suite: every koan is a real bug that its tests catch and its gold fix
resolves, and nothing in what the agent sees gives the fix away."""

from __future__ import annotations

import asyncio
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from looper_engine.tasks.koans import KOANS_DIR, KoanError, load_koans, load_koans_from
from looper_engine.tasks.model import Score, Task
from looper_engine.tasks.scoring import apply_gold, score_workspace

KOANS = load_koans()

# Koan workspaces use no pytest plugins, and discovering the ones installed in this
# environment costs about a second per run: over a hundred runs here.
HERMETIC = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Score, Score]]:
    """Each koan scored as shipped and again with its gold fix, two pytest runs at a time."""
    root = tmp_path_factory.mktemp("koans")

    async def check(task: Task, gate: asyncio.Semaphore) -> tuple[str, tuple[Score, Score]]:
        async with gate:
            workspace = root / task.id.replace("/", "__")
            shutil.copytree(task.source_dir, workspace)
            before = await score_workspace(task, workspace, timeout_s=60, env=HERMETIC)
            apply_gold(task, workspace)
            after = await score_workspace(task, workspace, timeout_s=60, env=HERMETIC)
            return task.id, (before, after)

    async def check_all() -> dict[str, tuple[Score, Score]]:
        gate = asyncio.Semaphore(2)
        return dict(await asyncio.gather(*(check(task, gate) for task in KOANS)))

    return asyncio.run(check_all())


@pytest.mark.parametrize("task", KOANS, ids=lambda task: task.id)
def test_koan_fails_as_shipped_and_passes_with_its_gold_fix(
    task: Task, verdicts: dict[str, tuple[Score, Score]]
) -> None:
    before, after = verdicts[task.id]
    assert not before.resolved and before.tests_failed >= 1, before.output
    assert before.error_signature, before.output
    assert after.resolved and after.tests_failed == 0, after.output
    assert after.tests_passed >= 3, after.output


def test_suite_is_large_and_varied() -> None:
    ids = [task.id for task in KOANS]
    assert len(ids) >= 44
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    by_family: dict[str, set[int]] = defaultdict(set)
    for task in KOANS:
        by_family[task.family].add(task.difficulty)
    assert len(by_family) >= 8
    for family, difficulties in by_family.items():
        assert difficulties == {1, 2, 3}, family


def test_tasks_describe_their_folders() -> None:
    for task in KOANS:
        family, name = task.id.split("/")
        assert task.suite == "koans"
        assert task.family == family
        assert task.source_dir == KOANS_DIR / family / name / "workspace"
        assert (task.source_dir / "conftest.py").read_text() == ""
        assert (task.source_dir / "tests" / f"test_{name}.py").is_file()
        assert set(task.target_files) == {edit.path for edit in task.gold}


def _source_lines(workspace: Path) -> int:
    return sum(
        len(path.read_text().splitlines())
        for path in workspace.rglob("*.py")
        if path.name != "conftest.py" and "tests" not in path.relative_to(workspace).parts
    )


def test_koans_are_small_modules() -> None:
    for task in KOANS:
        assert 15 <= _source_lines(task.source_dir) <= 60, task.id


def _fix_lines(task: Task) -> list[str]:
    """The lines the gold fix adds (ignoring trivial ones such as `raise`)."""
    lines = []
    for edit in task.gold:
        old = {line.strip() for line in edit.old.splitlines()}
        lines += [line.strip() for line in edit.new.splitlines() if line.strip() not in old]
    return [line for line in lines if len(line) >= 6]


def test_statements_do_not_give_the_fix_away() -> None:
    for task in KOANS:
        for line in _fix_lines(task):
            assert line not in task.statement, (task.id, line)


def test_workspaces_do_not_contain_the_fix() -> None:
    for task in KOANS:
        texts = [path.read_text() for path in task.source_dir.rglob("*") if path.is_file()]
        for edit in task.gold:
            assert not any(edit.new in text for text in texts), task.id


def test_load_koans_returns_independent_copies() -> None:
    first = load_koans()
    first[0].statement = "changed"
    first.clear()
    assert load_koans()[0].statement == KOANS[0].statement


def _write_koan(root: Path, family: str, name: str, toml: str, files: dict[str, str]) -> Path:
    folder = root / family / name
    (folder / "workspace").mkdir(parents=True)
    (folder / "koan.toml").write_text(toml)
    for rel, text in files.items():
        (folder / "workspace" / rel).write_text(text)
    return folder


GOOD_TOML = """
statement = '''
  The answer is wrong.
'''
difficulty = 2
target_files = ["answer.py"]

[[gold]]
path = "answer.py"
old = "41"
new = "42"
"""


def test_loader_reads_a_koan_folder(tmp_path: Path) -> None:
    _write_koan(tmp_path, "numeric", "answer", GOOD_TOML, {"answer.py": "ANSWER = 41\n"})
    _write_koan(tmp_path, "async", "zeta", GOOD_TOML, {"answer.py": "ANSWER = 41\n"})
    tasks = load_koans_from(tmp_path)
    assert [task.id for task in tasks] == ["async/zeta", "numeric/answer"]
    task = tasks[1]
    assert (task.suite, task.family, task.difficulty) == ("koans", "numeric", 2)
    assert task.statement == "The answer is wrong."
    assert task.source_dir == tmp_path / "numeric" / "answer" / "workspace"
    assert task.gold[0].new == "42"


@pytest.mark.parametrize(
    ("toml", "complaint"),
    [
        ("statement = 'unterminated", "koan.toml"),
        (GOOD_TOML.replace("difficulty = 2", "difficulty = 9"), "difficulty"),
        (GOOD_TOML.replace('target_files = ["answer.py"]', ""), "target_files"),
        ("hint = 'line 1'\n" + GOOD_TOML, "hint"),
        (GOOD_TOML + "\nhint = 'line 1'\n", "hint"),
        (GOOD_TOML.replace('path = "answer.py"', 'path = "missing.py"'), "missing.py"),
    ],
    ids=[
        "bad-toml",
        "difficulty-range",
        "no-targets",
        "unknown-key",
        "unknown-gold-key",
        "gold-path-missing",
    ],
)
def test_malformed_koan_names_its_file(tmp_path: Path, toml: str, complaint: str) -> None:
    folder = _write_koan(tmp_path, "numeric", "answer", toml, {"answer.py": "ANSWER = 41\n"})
    with pytest.raises(KoanError) as info:
        load_koans_from(tmp_path)
    assert str(folder) in str(info.value)
    assert complaint in str(info.value)


def test_koan_without_workspace_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "numeric" / "answer"
    folder.mkdir(parents=True)
    (folder / "koan.toml").write_text(GOOD_TOML)
    with pytest.raises(KoanError, match="workspace"):
        load_koans_from(tmp_path)
