"""Scoring a workspace with real test runs, error signatures of real failures, gold fixes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from looper_engine.errors import UserError
from looper_engine.tasks.model import GoldEdit, Score, Task
from looper_engine.tasks.scoring import OUTPUT_TAIL_CHARS, apply_gold, error_signature, score_workspace

# These workspaces use no pytest plugins; see test_koans.py.
HERMETIC = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}

MODULE = "def add(a, b):\n    return a + b\n"
PASSING_TESTS = """
from calc import add

def test_small():
    assert add(1, 2) == 3

def test_negative():
    assert add(-1, -2) == -3

def test_zero():
    assert add(0, 0) == 0
"""


def make_workspace(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "conftest.py").write_text("")
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def make_task(root: Path, command: list[str] | None = None, gold: list[GoldEdit] | None = None) -> Task:
    extra = {"test_command": command} if command else {}
    return Task(
        id="scratch/calc",
        suite="koans",
        family="scratch",
        statement="add is broken",
        source_dir=root,
        gold=gold or [],
        **extra,
    )


async def test_passing_workspace_is_resolved_and_left_clean(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", {"calc.py": MODULE, "tests/test_calc.py": PASSING_TESTS})
    score = await score_workspace(make_task(root), root)
    assert (score.resolved, score.exit_code) == (True, 0)
    assert (score.tests_passed, score.tests_failed) == (3, 0)
    assert score.error_signature == ""
    assert "3 passed" in score.output
    assert not list(root.rglob("__pycache__"))
    assert not (root / ".pytest_cache").exists()


async def test_failing_workspace(tmp_path: Path) -> None:
    tests = PASSING_TESTS.replace("add(-1, -2) == -3", "add(-1, -2) == 3")
    root = make_workspace(tmp_path / "ws", {"calc.py": MODULE, "tests/test_calc.py": tests})
    command = ["{python}", "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    score = await score_workspace(make_task(root, command), root, env=HERMETIC)
    assert (score.resolved, score.exit_code) == (False, 1)
    assert (score.tests_passed, score.tests_failed) == (2, 1)
    assert score.error_signature == "AssertionError: assert <N> == <N>"


async def test_tests_get_no_stdin(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", {})
    command = ["{python}", "-c", "import sys; print('read', repr(sys.stdin.read()))"]
    score = await score_workspace(make_task(root, command), root)
    assert score.resolved
    assert "read ''" in score.output


async def test_output_keeps_the_end(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", {})
    script = "for i in range(5000): print('line', i)\nprint('the end'); raise SystemExit(3)"
    score = await score_workspace(make_task(root, ["{python}", "-c", script]), root)
    assert (score.resolved, score.exit_code) == (False, 3)
    assert len(score.output) <= OUTPUT_TAIL_CHARS
    assert score.output.endswith("the end\n")


def _gone(pid: int) -> bool:
    """Whether the process has died, allowing for the moment between a killed process
    closing its files and the kernel marking it dead."""
    for _ in range(100):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")


@needs_proc
async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", {})
    command = ["sh", "-c", "sleep 60 & echo $! > child.pid; echo started; wait"]
    score = await score_workspace(make_task(root, command), root, timeout_s=1)
    assert (score.resolved, score.exit_code) == (False, None)
    assert "started" in score.output and "timed out after 1s" in score.output
    assert score.error_signature == "Timeout"
    assert _gone(int((root / "child.pid").read_text()))


@needs_proc
async def test_processes_left_behind_do_not_hold_up_scoring(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", {})
    command = ["sh", "-c", "sleep 60 & echo $! > child.pid; echo done"]
    score = await score_workspace(make_task(root, command), root, timeout_s=30)
    assert (score.resolved, score.exit_code) == (True, 0)
    assert _gone(int((root / "child.pid").read_text()))


async def test_missing_test_program_is_a_user_error(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", {})
    with pytest.raises(UserError, match="no-such-program-xyz"):
        await score_workspace(make_task(root, ["no-such-program-xyz"]), root)


async def test_missing_workspace_is_a_bug(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await score_workspace(make_task(tmp_path), tmp_path / "nowhere")


# Each case: a test file whose first failure should give the signature.
SIGNATURE_CASES = {
    "numbers": (
        "from calc import add\n\ndef test_it():\n    assert add(2, 2) == 5\n",
        "AssertionError: assert <N> == <N>",
    ),
    "other_numbers": (
        "from calc import add\n\ndef test_it():\n    assert add(40, 2) == 7\n",
        "AssertionError: assert <N> == <N>",
    ),
    "key_error": ("def test_it():\n    {'a': 1}['missing']\n", "KeyError: <S>"),
    "path_and_address": (
        "def test_it():\n    raise RuntimeError(f'cannot write /var/tmp/app/out.log for {object()}')\n",
        "RuntimeError: cannot write <PATH> for <object object at <ADDR>>",
    ),
    "assert_message": (
        "def test_it():\n    assert 1 == 2, 'expected 2 items, got 1'\n",
        "AssertionError: expected <N> items, got <N>",
    ),
    "chained": (
        "def test_it():\n    try:\n        {}['k']\n    except KeyError as exc:\n"
        "        raise LookupError('setting 3 not found') from exc\n",
        "LookupError: setting <N> not found",
    ),
    "collection_error": (
        "import not_a_module_xyz\n\ndef test_it():\n    pass\n",
        "ModuleNotFoundError: No module named <S>",
    ),
    "passing": ("def test_it():\n    pass\n", ""),
}


@pytest.fixture(scope="module")
def pytest_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Score]:
    files = {"calc.py": MODULE} | {
        f"tests/test_{name}.py": text for name, (text, _) in SIGNATURE_CASES.items()
    }
    root = make_workspace(tmp_path_factory.mktemp("signatures"), files)

    async def run(name: str, gate: asyncio.Semaphore) -> tuple[str, Score]:
        command = ["{python}", "-m", "pytest", "-q", "-p", "no:cacheprovider", f"tests/test_{name}.py"]
        async with gate:
            return name, await score_workspace(make_task(root, command), root, env=HERMETIC)

    async def run_all() -> dict[str, Score]:
        gate = asyncio.Semaphore(2)
        return dict(await asyncio.gather(*(run(name, gate) for name in SIGNATURE_CASES)))

    return asyncio.run(run_all())


@pytest.mark.parametrize("case", list(SIGNATURE_CASES))
def test_error_signature_of_real_pytest_output(case: str, pytest_outputs: dict[str, Score]) -> None:
    score = pytest_outputs[case]
    assert score.error_signature == SIGNATURE_CASES[case][1], score.output
    assert error_signature(score.output) == score.error_signature


def test_collection_errors_count_as_failures(pytest_outputs: dict[str, Score]) -> None:
    score = pytest_outputs["collection_error"]
    assert not score.resolved
    assert (score.tests_passed, score.tests_failed) == (0, 1)


async def test_error_signature_of_a_plain_traceback(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", {})
    script = (
        "def load(n):\n    try:\n        return 10 / n\n    except ZeroDivisionError as exc:\n"
        "        raise ValueError(f'bad divisor {n} in /etc/app.conf') from exc\nload(0)\n"
    )
    score = await score_workspace(make_task(root, ["{python}", "-c", script]), root)
    assert score.error_signature == "ValueError: bad divisor <N> in <PATH>"


def test_error_signature_without_failure() -> None:
    assert error_signature("") == ""
    assert error_signature("3 passed in 0.01s\n") == ""


def test_apply_gold_applies_edits_in_order(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", {"calc.py": "def add(a, b):\n    return a - b\n"})
    gold = [
        GoldEdit(path="calc.py", old="a - b", new="a + b"),
        GoldEdit(path="calc.py", old="return a + b", new="return b + a"),
    ]
    apply_gold(make_task(root, gold=gold), root)
    assert (root / "calc.py").read_text() == "def add(a, b):\n    return b + a\n"


@pytest.mark.parametrize(("old", "times"), [("a * b", 0), ("b", 2)])
def test_apply_gold_requires_old_text_exactly_once(tmp_path: Path, old: str, times: int) -> None:
    root = make_workspace(tmp_path / "ws", {"calc.py": "def add(a, b):\n    return a - b\n"})
    task = make_task(root, gold=[GoldEdit(path="calc.py", old=old, new="x")])
    with pytest.raises(ValueError, match=rf"scratch/calc: .*calc.py.* found it {times} times"):
        apply_gold(task, root)


def test_apply_gold_without_gold_is_a_bug(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no gold"):
        apply_gold(make_task(tmp_path), tmp_path)
