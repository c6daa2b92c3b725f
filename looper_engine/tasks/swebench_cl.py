"""SWE-Bench-CL: the curriculum file, workspaces from local clones, and scoring by test ids.

The curriculum (thomasjoshi/agents-never-forget, `SWE-Bench-CL-Curriculum.json`) groups
SWE-bench tasks into one chronological sequence per repository. Users pass its path; nothing
is downloaded. Repositories come from local clones under a `repos_dir`:

    repos_dir/<owner>__<name>   (tried first: the SWE-bench instance-id spelling, e.g. django__django)
    repos_dir/<name>            (a plain `git clone` into repos_dir, e.g. django)

A workspace is a detached `git worktree` of the clone at the task's base commit, with the
task's test patch applied. Scoring runs the FAIL_TO_PASS and PASS_TO_PASS test ids and grades
them as SWE-bench does: resolved iff every FAIL_TO_PASS test passes (or is an expected failure)
and no PASS_TO_PASS test fails, errors or goes missing.

How a task's test ids are run depends on their style:

- pytest node ids (`tests/test_x.py::TestY::test_z[p]`): `python -m pytest -rA -v ids...`
  (an id whose parameters SWE-bench cut short at a space runs its whole file and is graded by
  prefix, since pytest runs nothing at all when one id is malformed).
- bare test function names (sympy: `test_issue_1234`): pytest on the Python test files that the
  test patch touches; a name is graded by every collected test with that function name
  (parametrisations included), all of which must pass. sympy's own `bin/test` is not used.
- Django ids (`test_x (app.tests.XTests)`, and docstring ids, the first line of a test's
  docstring that Django's verbose runner prints instead of the name): `tests/runtests.py
  --verbosity 2 --parallel 1 labels...` when the workspace has `tests/runtests.py` (a Django
  checkout), else `python -m unittest -v labels...`. Each named test is one label
  (`app.tests.XTests.test_x`); when docstring ids are present, the test modules the test
  patch touches are run whole, since a docstring cannot be turned into a label.
- dotted unittest ids (`test_mod.TestX.test_y`): `python -m unittest -v ids...`.

`run_swe_tests` is the authoritative score. The `test_command` of `to_task` runs the same
tests and exits 0 when they all pass, which is the same verdict except where skips, expected
failures or whole-module Django runs make the exit status stricter than the per-test grading.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from looper_engine.errors import UserError
from looper_engine.sandbox import Sandbox, SandboxMode, SandboxSettings, open_sandbox
from looper_engine.tasks.model import Score, Task

# --- the curriculum file ----------------------------------------------------------------


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SweMetadata(_Lenient):
    instance_id: str
    repo: str
    base_commit: str
    created_at: str = ""
    difficulty: str = ""


class SweStatement(_Lenient):
    problem_statement: str
    hints_text: str = ""

    @field_validator("hints_text", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return "" if v is None else v


class SweEvaluation(_Lenient):
    patch: str = ""
    test_patch: str = ""
    FAIL_TO_PASS: list[str]
    PASS_TO_PASS: list[str] = Field(default_factory=list)

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _json_string_list(cls, v: Any) -> Any:
        # SWE-bench itself stores these lists as JSON-encoded strings.
        if isinstance(v, str):
            try:
                return json.loads(v) if v.strip() else []
            except json.JSONDecodeError:
                return [v]
        return v


class SweContinualLearning(_Lenient):
    sequence_position: int
    difficulty_score: float | None = None
    dependencies: list[str] = Field(default_factory=list)
    modified_files: list[str] = Field(default_factory=list)


class SweTask(_Lenient):
    metadata: SweMetadata
    task: SweStatement
    evaluation: SweEvaluation
    continual_learning: SweContinualLearning
    #: The sequence this task came from; filled in by `curriculum_tasks`.
    sequence_id: str = ""

    @property
    def instance_id(self) -> str:
        return self.metadata.instance_id

    @property
    def repo(self) -> str:
        return self.metadata.repo

    @property
    def test_ids(self) -> list[str]:
        """FAIL_TO_PASS then PASS_TO_PASS, without duplicates."""
        return list(dict.fromkeys([*self.evaluation.FAIL_TO_PASS, *self.evaluation.PASS_TO_PASS]))


class SweSequence(_Lenient):
    id: str
    repo: str
    num_tasks: int | None = None
    statistics: dict[str, Any] = Field(default_factory=dict)
    tasks: list[SweTask]


class Curriculum(_Lenient):
    metadata: dict[str, Any] = Field(default_factory=dict)
    evaluation_metrics: dict[str, Any] = Field(default_factory=dict)
    sequences: list[SweSequence]


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_curriculum(path: str | Path) -> Curriculum:
    """Read a SWE-Bench-CL curriculum JSON file. Extra fields are ignored; a missing file, bad
    JSON or a missing/mistyped field is a UserError naming the file and the field."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"SWE-Bench-CL curriculum not found: {p}")
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise UserError(f"{p}: not a UTF-8 text file ({e.reason})") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{p}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    try:
        return Curriculum.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        more = f" (and {e.error_count() - 1} more problems)" if e.error_count() > 1 else ""
        raise UserError(f"{p}: {_loc(err['loc'])}: {err['msg']}{more}") from None


def _matches(selector: str, seq: SweSequence) -> bool:
    s = selector.lower()
    repo = seq.repo.lower()
    return s in (seq.id.lower(), repo, repo.rsplit("/", 1)[-1], repo.replace("/", "__"))


def curriculum_tasks(curriculum: Curriculum, sequences: list[str] | None = None) -> list[SweTask]:
    """The tasks of the chosen sequences (all when None), sequence after sequence in the order
    given, each sequence in chronological order (sequence_position, then created_at).

    A sequence is chosen by its id, its repo (`django/django`), the repo's name (`django`) or
    the instance-id spelling (`django__django`), case-insensitively."""
    if sequences is None:
        chosen = list(curriculum.sequences)
    else:
        chosen = []
        for sel in sequences:
            found = [s for s in curriculum.sequences if _matches(sel, s)]
            if not found:
                known = ", ".join(s.id for s in curriculum.sequences) or "none"
                raise UserError(f"no SWE-Bench-CL sequence {sel!r} (known: {known})")
            chosen.extend(s for s in found if s not in chosen)
    out: list[SweTask] = []
    for seq in chosen:
        ordered = sorted(
            seq.tasks, key=lambda t: (t.continual_learning.sequence_position, t.metadata.created_at)
        )
        out.extend(t.model_copy(update={"sequence_id": seq.id}) for t in ordered)
    return out


# --- processes ------------------------------------------------------------------------------


#: bytes of a harness command's output kept at each end
_KEEP_BYTES = 8 << 20


class _Proc(BaseModel):
    returncode: int | None
    output: str
    timed_out: bool = False


async def _run(
    argv: list[str],
    cwd: Path | None = None,
    stdin: str | None = None,
    timeout_s: float | None = None,
    env: dict[str, str] | None = None,
    sandbox: Sandbox | None = None,
) -> _Proc:
    """Run argv (in ``sandbox``; None: unconfined, as for git on the host's clone) with stdout
    and stderr merged into one text. It runs in its own process group, killed when it ends
    or times out, so nothing it started outlives it."""
    box = sandbox or Sandbox(cwd or Path.cwd(), SandboxSettings(mode="none"))
    result = await box.run(
        argv, cwd=cwd, env=env if env is not None else box.env(), timeout_s=timeout_s,
        stdin=stdin.encode() if stdin is not None else None, head=_KEEP_BYTES, tail=_KEEP_BYTES,
    )
    if result.error:
        return _Proc(returncode=127, output=result.error)
    return _Proc(returncode=result.returncode, output=result.text(), timed_out=result.timed_out)


async def _git(args: list[str], cwd: Path, stdin: str | None = None) -> _Proc:
    return await _run(["git", *args], cwd=cwd, stdin=stdin)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


# --- workspaces -----------------------------------------------------------------------------


def clone_candidates(repo: str, repos_dir: Path) -> list[Path]:
    """Where the local clone of `repo` ("owner/name") is looked for, in order."""
    owner, _, name = repo.rpartition("/")
    cands = [repos_dir / f"{owner}__{name}"] if owner else []
    cands.append(repos_dir / name)
    return cands


def find_clone(repo: str, repos_dir: Path) -> Path:
    cands = clone_candidates(repo, repos_dir)
    for c in cands:
        if (c / ".git").exists():
            return c
    raise UserError(f"no local clone of {repo}: expected a git repository at {' or '.join(map(str, cands))}")


async def apply_patch(workspace: Path, patch: str, what: str = "patch") -> None:
    """`git apply` a diff in the workspace. Hunk line counts are recounted, because curriculum
    files (the SWE-Bench-CL sample among them) carry hand-written hunks with wrong counts."""
    if not patch.strip():
        return
    res = await _git(
        ["apply", "--recount", "--whitespace=nowarn", "-"], cwd=workspace, stdin=_terminated(patch)
    )
    if res.returncode != 0:
        raise UserError(f"the {what} does not apply in {workspace}: {_last_line(res.output)}")


def _terminated(patch: str) -> str:
    # git rejects a diff whose last line has no newline as corrupt; JSON strings often drop it.
    return patch if patch.endswith("\n") else patch + "\n"


async def _patch_applied(workspace: Path, patch: str) -> bool:
    res = await _git(
        ["apply", "--recount", "--reverse", "--check", "-"], cwd=workspace, stdin=_terminated(patch)
    )
    return res.returncode == 0


async def prepare_swe_workspace(
    task: SweTask, repos_dir: Path, dest: Path, apply_test_patch: bool = True
) -> Path:
    """Check out the task's base commit as a detached worktree at `dest` (see the module
    docstring for where clones are looked for) and apply its test patch. Returns `dest`.

    The test patch is applied by default, as the harness scores with it; pass
    `apply_test_patch=False` to keep the new tests out of the agent's sight (`run_swe_tests`
    applies it before scoring when it is missing)."""
    clone = find_clone(task.repo, Path(repos_dir))
    dest = Path(dest).absolute()
    if dest.exists() and any(dest.iterdir()):
        raise UserError(f"workspace {dest} already exists and is not empty")
    res = await _git(["worktree", "add", "--detach", str(dest), task.metadata.base_commit], cwd=clone)
    if res.returncode != 0:
        raise UserError(
            f"cannot check out {task.metadata.base_commit} of {clone} for {task.instance_id}: "
            f"{_last_line(res.output)}"
        )
    if apply_test_patch:
        try:
            await apply_patch(dest, task.evaluation.test_patch, f"test patch of {task.instance_id}")
        except UserError:
            await remove_worktree(dest)
            raise
    return dest


async def remove_worktree(workspace: Path) -> None:
    """Remove a worktree made by `prepare_swe_workspace`, local changes and all. A workspace
    that is already gone is left alone."""
    workspace = Path(workspace).absolute()
    if not workspace.exists():
        return
    res = await _git(["rev-parse", "--git-common-dir"], cwd=workspace)
    if res.returncode != 0:
        raise UserError(f"{workspace} is not a git worktree")
    common = Path(res.output.strip())
    if not common.is_absolute():
        common = (workspace / common).resolve()
    res = await _run(["git", f"--git-dir={common}", "worktree", "remove", "--force", str(workspace)])
    if res.returncode != 0:
        raise UserError(f"cannot remove worktree {workspace}: {_last_line(res.output)}")


# --- test ids and commands ----------------------------------------------------------------

TestStyle = Literal["pytest", "django", "unittest"]
TestStatus = Literal["passed", "failed", "error", "skipped", "xfail", "xpass", "missing"]

_DJANGO_ID = re.compile(r"^(?P<name>\w+) \((?P<path>[\w.]+)\)$")
_DOTTED_ID = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
_BARE_ID = re.compile(r"^[A-Za-z_]\w*(\[.*\])?$")
_DIFF_FILE = re.compile(r"^diff --git a/(?P<a>\S+) b/(?P<b>\S+)", re.MULTILINE)


class TestPlan(BaseModel):
    """How to run a task's tests: the style of its ids and the argv (with the interpreter)."""

    __test__ = False  # not a pytest test class, despite the name

    style: TestStyle
    argv: list[str]


def _patch_files(patch: str) -> list[str]:
    return list(dict.fromkeys(m.group("b") for m in _DIFF_FILE.finditer(patch)))


def _test_files(patch: str) -> list[str]:
    py = [f for f in _patch_files(patch) if f.endswith(".py")]
    tests = [f for f in py if Path(f).name.startswith("test") or f.endswith("_test.py")]
    return tests or py


def _balanced(test_id: str) -> bool:
    return test_id.count("[") == test_id.count("]")


def _runnable(node_id: str) -> str:
    """The node id to hand pytest. Some SWE-bench ids have parameters cut at a space
    (`test_x[a`); pytest rejects such an id and then runs nothing at all, so its whole file
    runs instead (the id is still graded, by prefix)."""
    if _balanced(node_id) and not any(ch.isspace() for ch in node_id):
        return node_id
    return node_id.split("::", 1)[0]


def _django_key(name: str, path: str) -> str:
    # Python >= 3.11 prints "name (mod.Class.name)", older ones "name (mod.Class)".
    return path if path.endswith("." + name) else f"{path}.{name}"


def id_style(ids: list[str]) -> TestStyle:
    if any("::" in i for i in ids):
        return "pytest"
    if any(_DJANGO_ID.match(i) for i in ids):
        return "django"
    if ids and all(_DOTTED_ID.match(i) for i in ids):
        return "unittest"
    return "pytest"


def plan_tests(task: SweTask, python: str = "{python}", workspace: Path | None = None) -> TestPlan:
    """The command that runs the task's FAIL_TO_PASS and PASS_TO_PASS tests (module docstring).
    Without a workspace a Django-style task is assumed to be a Django checkout."""
    ids = task.test_ids
    style = id_style(ids)
    if style == "pytest":
        node_ids = list(dict.fromkeys(_runnable(i) for i in ids if "::" in i or i.endswith(".py")))
        if any(_BARE_ID.match(i) and "::" not in i for i in ids):
            node_ids += [f for f in _test_files(task.evaluation.test_patch) if f not in node_ids]
        # --rootdir pins node ids to the repository root even in a repo without a pytest config,
        # where pytest would otherwise make them relative to the common folder of the arguments.
        argv = [
            python,
            "-m",
            "pytest",
            "-rA",
            "-v",
            "--tb=short",
            "-p",
            "no:cacheprovider",
            "--rootdir=.",
            *node_ids,
        ]
        return TestPlan(style="pytest", argv=argv)
    if style == "unittest":
        return TestPlan(style="unittest", argv=[python, "-m", "unittest", "-v", *ids])
    labels: list[str] = []
    if any(not _DJANGO_ID.match(i) for i in ids):
        for f in _test_files(task.evaluation.test_patch):
            rel = f[len("tests/") :] if f.startswith("tests/") else f
            labels.append(rel[: -len(".py")].replace("/", "."))
    for i in ids:
        m = _DJANGO_ID.match(i)
        if m:
            label = _django_key(m.group("name"), m.group("path"))
            if not any(label.startswith(mod + ".") for mod in labels):
                labels.append(label)
    labels = list(dict.fromkeys(labels))
    runner = workspace is None or (Path(workspace) / "tests" / "runtests.py").is_file()
    if runner:
        argv = [python, "tests/runtests.py", "--verbosity", "2", "--parallel", "1", *labels]
    else:
        argv = [python, "-m", "unittest", "-v", *labels]
    return TestPlan(style="django", argv=argv)


# --- reading test output --------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PYTEST_STATUSES = {
    "PASSED": "passed",
    "FAILED": "failed",
    "ERROR": "error",
    "SKIPPED": "skipped",
    "XFAIL": "xfail",
    "XPASS": "xpass",
}
_PYTEST_SUMMARY = re.compile(r"^(?P<st>PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (?P<id>\S.*?)(?: - .*)?$")
_PYTEST_VERBOSE = re.compile(r"^(?P<id>\S.*?::.*?) (?P<st>PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)(?:\s.*)?$")
_UNITTEST_LINE = re.compile(
    r"^(?P<desc>.*?) \.\.\. (?P<st>ok|FAIL|ERROR|skipped.*|expected failure|unexpected success)$"
)
_UNITTEST_STATUSES = {
    "ok": "passed",
    "FAIL": "failed",
    "ERROR": "error",
    "expected failure": "xfail",
    "unexpected success": "xpass",
}
# When one test reports twice (a pass, then an error in teardown), the worse report counts.
_RANK = {"missing": 0, "skipped": 1, "xfail": 2, "passed": 2, "xpass": 3, "failed": 4, "error": 5}


def _record(results: dict[str, str], key: str, status: str) -> None:
    old = results.get(key)
    if old is None or _RANK[status] > _RANK[old]:
        results[key] = status


def parse_pytest_output(output: str) -> dict[str, str]:
    """Node id -> status from `pytest -rA -v` output (summary and verbose lines)."""
    results: dict[str, str] = {}
    for raw in output.splitlines():
        line = _ANSI.sub("", raw).rstrip()
        m = _PYTEST_SUMMARY.match(line)
        if m and not m.group("id").startswith("["):  # "SKIPPED [1] file:line: reason" names no test
            _record(results, m.group("id"), _PYTEST_STATUSES[m.group("st")])
            continue
        m = _PYTEST_VERBOSE.match(line)
        if m:
            _record(results, m.group("id"), _PYTEST_STATUSES[m.group("st")])
    return results


def parse_unittest_output(output: str) -> dict[str, str]:
    """Test -> status from verbose unittest (and Django runner) output. Keys are dotted paths
    (`mod.Class.test`) and, for tests with a docstring, its first line too."""
    results: dict[str, str] = {}
    prev = ""
    for raw in output.splitlines():
        line = _ANSI.sub("", raw).rstrip()
        m = _UNITTEST_LINE.match(line)
        if m:
            st = m.group("st")
            status = "skipped" if st.startswith("skipped") else _UNITTEST_STATUSES[st]
            desc = m.group("desc").strip()
            head = _DJANGO_ID.match(desc)
            if head:
                _record(results, _django_key(head.group("name"), head.group("path")), status)
            else:
                _record(results, desc, status)
                prev_head = _DJANGO_ID.match(prev.strip())
                if prev_head:
                    _record(results, _django_key(prev_head.group("name"), prev_head.group("path")), status)
        prev = line
    return results


def _status_of(test_id: str, style: TestStyle, results: dict[str, str]) -> str:
    if style == "pytest":
        if test_id in results:
            return results[test_id]
        if "::" in test_id:
            if _balanced(test_id):
                return "missing"
            hits = [st for key, st in results.items() if key.startswith(test_id)]
            return max(hits, key=_RANK.__getitem__) if hits else "missing"
        # A bare name: every collected test of that name (a parametrised id only its own case).
        if "[" in test_id:
            hits = [st for key, st in results.items() if key.rsplit("::", 1)[-1] == test_id]
        else:
            hits = [st for key, st in results.items() if key.rsplit("::", 1)[-1].split("[", 1)[0] == test_id]
        return max(hits, key=_RANK.__getitem__) if hits else "missing"
    m = _DJANGO_ID.match(test_id)
    key = _django_key(m.group("name"), m.group("path")) if m else test_id.strip()
    return results.get(key, "missing")


# --- scoring --------------------------------------------------------------------------------


class SweTestResult(BaseModel):
    test_id: str
    group: Literal["FAIL_TO_PASS", "PASS_TO_PASS"]
    status: TestStatus
    ok: bool


class SweScore(BaseModel):
    instance_id: str
    resolved: bool
    results: list[SweTestResult]
    style: TestStyle
    command: list[str]
    exit_code: int | None
    timed_out: bool = False
    output: str = ""  # the tail of the test run's output
    duration_s: float = 0.0

    @property
    def failing(self) -> list[SweTestResult]:
        return [r for r in self.results if not r.ok]

    def error_signature(self) -> str:
        """A stable one-line description of why it is not resolved ("" when it is)."""
        if self.resolved:
            return ""
        if self.timed_out:
            return "timeout"
        bad = sorted(f"{r.status}:{r.test_id}" for r in self.failing)
        shown = ", ".join(bad[:3])
        return shown + (f" (+{len(bad) - 3})" if len(bad) > 3 else "")

    def to_score(self) -> Score:
        passed = sum(1 for r in self.results if r.ok)
        return Score(
            resolved=self.resolved,
            exit_code=self.exit_code,
            tests_passed=passed,
            tests_failed=len(self.results) - passed,
            output=self.output,
            error_signature=self.error_signature(),
            duration_s=self.duration_s,
        )


def _ok(group: str, status: str) -> bool:
    if group == "FAIL_TO_PASS":
        return status in ("passed", "xfail")
    return status not in ("failed", "error", "missing")


async def run_swe_tests(
    task: SweTask,
    workspace: Path,
    timeout_s: float,
    python: str | None = None,
    output_tail: int = 20000,
    sandbox: Sandbox | None = None,
    sandbox_mode: SandboxMode = "auto",
) -> SweScore:
    """Run the task's FAIL_TO_PASS and PASS_TO_PASS tests in `workspace` and grade each one.

    `python` is the interpreter of the repository's environment (default: this one). The tests
    run in ``sandbox``, or when None in one opened for this run with ``sandbox_mode``
    ("none": unconfined); the environment of ``python`` is readable inside. The test
    patch is applied first if the workspace lacks it. A run past `timeout_s` is killed; tests
    it had not reported count as missing, so the task is not resolved."""
    workspace = Path(workspace).absolute()
    if not workspace.is_dir():
        raise UserError(f"workspace not found: {workspace}")
    patch = task.evaluation.test_patch
    if patch.strip() and not await _patch_applied(workspace, patch):
        await apply_patch(workspace, patch, f"test patch of {task.instance_id}")
    plan = plan_tests(task, python or sys.executable, workspace)
    own = sandbox is None
    if sandbox is None:
        # The repository's interpreter may live under $HOME: its environment is bound back.
        env_root = [Path(python).resolve().parent.parent] if python else []
        sandbox = open_sandbox(workspace, SandboxSettings(mode=sandbox_mode, read_only=env_root))
    box = sandbox
    try:
        env = box.env({"PYTHONDONTWRITEBYTECODE": "1", "PY_COLORS": "0", "NO_COLOR": "1"})
        start = time.monotonic()
        proc = await _run(plan.argv, cwd=workspace, timeout_s=timeout_s, env=env, sandbox=box)
        duration = time.monotonic() - start
    finally:
        if own:
            await box.close()
    parsed = (
        parse_pytest_output(proc.output) if plan.style == "pytest" else parse_unittest_output(proc.output)
    )
    results: list[SweTestResult] = []
    seen: set[str] = set()
    groups: list[tuple[Literal["FAIL_TO_PASS", "PASS_TO_PASS"], list[str]]] = [
        ("FAIL_TO_PASS", task.evaluation.FAIL_TO_PASS),
        ("PASS_TO_PASS", task.evaluation.PASS_TO_PASS),
    ]
    for group, ids in groups:
        for test_id in ids:
            if test_id in seen:
                continue
            seen.add(test_id)
            status = _status_of(test_id, plan.style, parsed)
            results.append(
                SweTestResult.model_validate(
                    {"test_id": test_id, "group": group, "status": status, "ok": _ok(group, status)}
                )
            )
    resolved = not proc.timed_out and bool(results) and all(r.ok for r in results)
    return SweScore(
        instance_id=task.instance_id,
        resolved=resolved,
        results=results,
        style=plan.style,
        command=plan.argv,
        exit_code=proc.returncode,
        timed_out=proc.timed_out,
        output=proc.output[-output_tail:],
        duration_s=duration,
    )


# --- the agent's view -----------------------------------------------------------------------

_DIFFICULTY_WORDS = {"<15 min fix": 1, "15 min - 1 hour": 2, "1-4 hours": 3, ">4 hours": 4}


def _difficulty(task: SweTask) -> int:
    score = task.continual_learning.difficulty_score
    if score is not None:
        return min(5, max(1, round(score)))
    return _DIFFICULTY_WORDS.get(task.metadata.difficulty.strip(), 1)


def to_task(swe_task: SweTask, workspace_root: Path, include_hints: bool = True) -> Task:
    """The agent's task for a prepared workspace: suite "swe-bench-cl", family = the repo, the
    issue (and its hints) as the statement, no gold edits (the reference fix is a diff), and a
    test command that runs the FAIL_TO_PASS and PASS_TO_PASS tests."""
    statement = swe_task.task.problem_statement.strip()
    hints = swe_task.task.hints_text.strip()
    if include_hints and hints:
        statement += "\n\nHints:\n" + hints
    plan = plan_tests(swe_task, "{python}", Path(workspace_root))
    return Task(
        id=f"swe-bench-cl/{swe_task.instance_id}",
        suite="swe-bench-cl",
        family=swe_task.repo,
        difficulty=_difficulty(swe_task),
        statement=statement,
        source_dir=Path(workspace_root),
        target_files=list(swe_task.continual_learning.modified_files),
        gold=[],
        test_command=plan.argv,
        repo=swe_task.repo,
    )


__all__ = [
    "Curriculum",
    "SweScore",
    "SweSequence",
    "SweTask",
    "SweTestResult",
    "TestPlan",
    "apply_patch",
    "clone_candidates",
    "curriculum_tasks",
    "find_clone",
    "load_curriculum",
    "parse_pytest_output",
    "parse_unittest_output",
    "plan_tests",
    "prepare_swe_workspace",
    "remove_worktree",
    "run_swe_tests",
    "to_task",
]
