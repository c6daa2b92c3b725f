"""The prompt builder. The agent at inference and the training-data synthesis both call
these functions, so the format a model is trained on is the format it is run with."""

from __future__ import annotations

from looper_engine.config import AgentConfig
from looper_engine.tasks.model import Task

TOOLS_TEXT = """\
You fix bugs in a small code repository. You act by writing exactly one tool call per reply,
as an XML tag. The tools:

<bash>COMMAND</bash>
    Run a shell command in the repository root (no stdin, time-limited, output truncated).
<read>PATH</read>
    Show a file with line numbers.
{range_line}<write path="PATH">WHOLE FILE CONTENT</write>
    Create or overwrite a file.
<edit path="PATH"><old>EXACT OLD LINES</old><new>NEW LINES</new></edit>
    Replace one occurrence of the old lines with the new lines. Copy the old lines exactly.
<done>ONE-LINE SUMMARY</done>
    Finish when the fix is made. The task's tests then decide whether the bug is fixed.

Write a short thought before the tag if it helps you. Only the first tool call in a reply runs.
After each call you receive its output as the next message."""

RANGE_LINE = """<read>PATH:START-END</read>
    Show only lines START to END of a file (use it for long files).
"""

RULES = {
    "base": "Make the smallest change that fixes the bug. Do not change the tests.",
    "no_pip_rule": "Never run pip install or try to install packages: everything needed is installed.",
    "skip_verification_rule": (
        "Run the tests once after your fix. If they pass, reply with <done> at once; "
        "do not re-run them again and again or re-read files you have already seen."
    ),
}

FEW_SHOT = """\
Example of a whole episode (a different task):

Task: `average([])` raises ZeroDivisionError; it should return 0.0.

Reply: Let me look at the function first.
<read>stats.py</read>

Output:
    1 | def average(values):
    2 |     return sum(values) / len(values)

Reply: The empty list divides by zero. I will guard it.
<edit path="stats.py"><old>    return sum(values) / len(values)</old><new>    if not values:
        return 0.0
    return sum(values) / len(values)</new></edit>

Output: edited stats.py (exact match, lines 2-4)

Reply: <bash>python -m pytest -q</bash>

Output: 3 passed in 0.02s (exit code 0)

Reply: <done>average() returns 0.0 for an empty list</done>"""


#: The compact profile: the three tools an episode of a small model needs, nothing else.
COMPACT_SYSTEM_PROMPT = """\
Fix the bug. Reply with one tool call:
<read>PATH</read>
<edit path="PATH"><old>OLD</old><new>NEW</new></edit>
<done>SUMMARY</done>
OLD is the smallest text, unique in the file, that must change."""


def build_system_prompt(config: AgentConfig) -> str:
    if config.prompt_profile == "compact":
        return COMPACT_SYSTEM_PROMPT
    parts = [TOOLS_TEXT.format(range_line=RANGE_LINE if config.line_range_reads else "")]
    rules = [RULES["base"]]
    if config.no_pip_rule:
        rules.append(RULES["no_pip_rule"])
    if config.skip_verification_rule:
        rules.append(RULES["skip_verification_rule"])
    parts.append("Rules:\n" + "\n".join(f"- {r}" for r in rules))
    if config.few_shot:
        parts.append(FEW_SHOT)
    return "\n\n".join(parts)


def build_task_prompt(task: Task, config: AgentConfig | None = None) -> str:
    """The first user message. The compact profile gives the statement alone: no task id (a
    world id names the template) and no test command (a small model does not run one)."""
    if config is not None and config.prompt_profile == "compact":
        return task.statement.strip()
    return (
        f"Task ({task.id}): {task.statement.strip()}\n\n"
        "The repository is your current directory. Its tests run with `python -m pytest -q`."
    )
