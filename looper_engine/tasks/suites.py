"""Named task suites, and picking tasks out of them by id patterns."""

from __future__ import annotations

import difflib
from fnmatch import fnmatchcase

from looper_engine.errors import UserError
from looper_engine.tasks.koans import load_koans
from looper_engine.tasks.model import Task

SUITES: tuple[str, ...] = ("koans",)


def load_suite(name: str) -> list[Task]:
    """Every task of the suite `name`, sorted by id."""
    if name == "koans":
        return load_koans()
    raise UserError(f"unknown suite {name!r}; known suites: {', '.join(SUITES)}")


def _matches(task_id: str, pattern: str) -> bool:
    # A bare family name ("off_by_one") selects the whole family.
    return fnmatchcase(task_id, pattern) or fnmatchcase(task_id, pattern.rstrip("/") + "/*")


def select_tasks(tasks: list[Task], patterns: list[str] | None) -> list[Task]:
    """The tasks whose id matches any of the glob `patterns`, in their given order.

    No patterns (None or empty) selects every task. A pattern that matches no task is an
    error, so that a typo never silently shrinks an experiment.
    """
    if not patterns:
        return list(tasks)
    chosen: set[str] = set()
    for pattern in patterns:
        hits = {task.id for task in tasks if _matches(task.id, pattern)}
        if not hits:
            raise UserError(f"no task matches {pattern!r}; see `looper tasks`")
        chosen |= hits
    return [task for task in tasks if task.id in chosen]


def get_task(task_id: str) -> Task:
    """The task with this exact id, from any suite."""
    known: list[str] = []
    for suite in SUITES:
        for task in load_suite(suite):
            if task.id == task_id:
                return task
            known.append(task.id)
    close = difflib.get_close_matches(task_id, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UserError(f"unknown task {task_id!r}{hint}; see `looper tasks`")
