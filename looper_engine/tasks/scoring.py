"""Score a workspace by running its task's tests, and apply a task's reference fix.

The verdict is the test command's exit status; the pass/fail counts and the error
signature are read from pytest's output for reports and for grouping failures.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path

from looper_engine.errors import UserError
from looper_engine.sandbox import Sandbox, SandboxSettings
from looper_engine.tasks.model import Score, Task

#: How much of the test output a Score keeps (the end, where pytest puts its summary).
OUTPUT_TAIL_CHARS = 4000
#: How much of the beginning is kept for finding the first failure.
_HEAD_CHARS = 256_000
#: bytes of the end kept while the tests run (enough for OUTPUT_TAIL_CHARS of any text)
_TAIL_BYTES = 4 * OUTPUT_TAIL_CHARS

# pytest's last line: "1 failed, 3 passed, 1 warning in 0.12s", possibly framed by "=".
_SUMMARY_LINE = re.compile(r"^=*\s*((?:\d+ \w+(?:, )?)+)\s+in [\d.]+s(?: \([\d:]+\))?\s*=*\s*$", re.M)
_SUMMARY_PART = re.compile(r"(\d+) (passed|failed|errors?)\b")

# A failure's section in pytest's report: "____ test_name ____" or "____ ERROR collecting x ____".
_SECTION_HEADER = re.compile(r"^_{3,} .+ _{3,}$", re.M)
_CHAIN_SEPARATORS = (
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
)
# A pytest failure line ("E       ValueError: bad") and a plain traceback's last line.
_E_LINE = re.compile(r"^E\s+(.*\S)\s*$", re.M)
_SHORT_SUMMARY = re.compile(r"^(?:FAILED|ERROR) \S+ - (.*\S)\s*$", re.M)
_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::\s*(.*))?$")
_TRACEBACK = re.compile(r"^Traceback \(most recent call last\):\n(?:[ \t].*\n|\n)*?(\S.*)$", re.M)

# A closing quote is one followed by what can follow a literal in a repr or a message.
_AFTER_STRING = frozenset(" \t\n,.;:)]}>=")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b")
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\w.~-]*[/\\])+[\w.-]+")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])|\b\d+\b")
_SIGNATURE_MAX = 200


def _command(task: Task) -> list[str]:
    return [part.replace("{python}", sys.executable) for part in task.test_command]


def _counts(output: str) -> tuple[int, int]:
    summaries = _SUMMARY_LINE.findall(output)
    if not summaries:
        return 0, 0
    passed = failed = 0
    for count, kind in _SUMMARY_PART.findall(summaries[-1]):
        if kind == "passed":
            passed += int(count)
        else:
            failed += int(count)
    return passed, failed


async def score_workspace(
    task: Task,
    root: Path,
    timeout_s: float = 120,
    *,
    env: Mapping[str, str] | None = None,
    sandbox: Sandbox | None = None,
) -> Score:
    """Run `task.test_command` in `root`; resolved when it exits 0 within `timeout_s`.

    The command runs in ``sandbox`` (None: unconfined), so a `conftest.py` the model planted
    has no more rights than its bash calls. `env` adds variables on top of the sandbox's
    environment. The command's process group is killed when it ends or times out, so nothing
    the tests started outlives the score.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"workspace {root} does not exist")
    argv = _command(task)
    box = sandbox or Sandbox(root, SandboxSettings(mode="none"))
    # Skip Looper's own pytest plugins in the task's test run (and start much faster).
    full_env = box.env({"PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **(env or {})})
    result = await box.run(argv, cwd=root, env=full_env, timeout_s=timeout_s, head=_HEAD_CHARS, tail=_TAIL_BYTES)
    if result.error:
        raise UserError(f"cannot run the tests of {task.id}: {result.error}")
    timed_out = result.timed_out
    tail = result.end(OUTPUT_TAIL_CHARS)
    passed, failed = _counts(tail)
    if timed_out:
        note = f"\n[looper] tests timed out after {timeout_s:g}s and were killed\n"
        tail = (tail + note)[-OUTPUT_TAIL_CHARS:]
    return Score(
        resolved=not timed_out and result.returncode == 0,
        exit_code=None if timed_out else result.returncode,
        tests_passed=passed,
        tests_failed=failed,
        output=tail,
        error_signature=error_signature(result.text()) or ("Timeout" if timed_out else ""),
        duration_s=round(result.duration_s, 3),
    )


def _strip_strings(text: str) -> str:
    """Replace quoted literals by <S>. Pytest elides long reprs with "...", which leaves
    unpaired quotes, so a string ends at a quote followed by a delimiter rather than at the
    first matching quote; an apostrophe inside a word ("don't") opens nothing."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in "'\"" and (i == 0 or not text[i - 1].isalnum()):
            j = text.find(char, i + 1)
            while j != -1 and (
                text[j - 1] == "\\" or (j + 1 < len(text) and text[j + 1] not in _AFTER_STRING)
            ):
                j = text.find(char, j + 1)
            if j != -1:
                out.append("<S>")
                i = j + 1
                continue
        out.append(char)
        i += 1
    return "".join(out)


def _normalise(message: str) -> str:
    message = _strip_strings(message)
    message = _HEX.sub("<ADDR>", message)
    message = _PATH.sub("<PATH>", message)
    message = _NUMBER.sub("<N>", message)
    message = " ".join(message.split())
    return message[:_SIGNATURE_MAX]


def _signature_of(line: str) -> str:
    if line.startswith("assert ") or line == "assert":
        return "AssertionError: " + _normalise(line)
    match = _EXC_LINE.match(line)
    if match is None:
        return ""
    name, message = match.group(1), match.group(2)
    # An exception is named in CamelCase; "where 3 = f(2)" and similar lines are not.
    if not name.rsplit(".", 1)[-1][:1].isupper():
        return ""
    name = name.rsplit(".", 1)[-1]
    return f"{name}: {_normalise(message)}" if message else name


def _last_link(text: str) -> str:
    """The part of a traceback after its last "caused by"/"during handling" separator: the
    exception that actually ended the test, not the one it chained from."""
    cut = max(text.rfind(separator) for separator in _CHAIN_SEPARATORS)
    return text if cut < 0 else text[cut:]


def _first_signature(lines: list[str]) -> str:
    for line in lines:
        signature = _signature_of(line)
        if signature:
            return signature
    return ""


def error_signature(output: str) -> str:
    """The first failure in test output as "Type: message" with its details normalised.

    Numbers become <N>, hex addresses <ADDR>, quoted strings <S> and paths <PATH>, so the
    same bug gives the same signature across runs and workspaces. A bare pytest assertion
    ("assert 3 == 4") is reported as an AssertionError; of a chain of exceptions, the last
    one is reported. "" when the output shows no failure.
    """
    headers = list(_SECTION_HEADER.finditer(output))
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(output)
        signature = _first_signature(_E_LINE.findall(_last_link(output[header.end() : end])))
        if signature:
            return signature
    signature = _first_signature(_E_LINE.findall(output)) or _first_signature(_SHORT_SUMMARY.findall(output))
    if signature:
        return signature
    for match in _TRACEBACK.finditer(output):
        if output[match.end() :].lstrip().startswith(_CHAIN_SEPARATORS):
            continue  # the exception this one led to comes next
        signature = _signature_of(match.group(1).strip())
        if signature:
            return signature
    return ""


def apply_gold(task: Task, root: Path) -> None:
    """Apply the task's reference fix to the workspace at `root`.

    Each edit's `old` text must occur exactly once in its file (after the earlier edits);
    anything else is a bug in the task and raises ValueError.
    """
    if not task.gold:
        raise ValueError(f"{task.id} has no gold edits")
    for edit in task.gold:
        path = root / edit.path
        text = path.read_text(encoding="utf-8")
        found = text.count(edit.old)
        if found != 1:
            raise ValueError(
                f"{task.id}: gold edit for {edit.path} expects its old text once, found it {found} times"
            )
        path.write_text(text.replace(edit.old, edit.new), encoding="utf-8")
