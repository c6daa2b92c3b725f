"""Named task suites, and picking tasks out of them by id patterns."""

from __future__ import annotations

import difflib
import functools
import re
from fnmatch import fnmatchcase
from pathlib import Path

from looper_engine.errors import UserError
from looper_engine.tasks.koans import load_koans
from looper_engine.tasks.model import Task

SUITES: tuple[str, ...] = ("koans", "world")

# "world", "world:SEED" or "world:SEED:N" (N instances of every template).
_WORLD_SPEC = re.compile(r"^world(?::(\d+)(?::(\d+))?)?$")


@functools.cache
def _world(seed: int, per_template: int, cache_dir: Path) -> tuple[Task, ...]:
    from looper_engine.tasks import world

    return tuple(world.generate(seed=seed, per_template=per_template, cache_dir=cache_dir))


def is_suite(name: str) -> bool:
    """True when `load_suite(name)` knows the name (it may still fail, e.g. on `world:1:0`)."""
    return name in SUITES or _WORLD_SPEC.match(name) is not None


def _copy(task: Task) -> Task:
    # What a caller could change, copied; a deep copy of thousands of tasks takes a second.
    return task.model_copy(
        update={
            "target_files": list(task.target_files),
            "gold": [edit.model_copy() for edit in task.gold],
            "test_command": list(task.test_command),
        }
    )


def load_suite(name: str) -> list[Task]:
    """Every task of the suite `name`, sorted by id.

    `world` is the task world at seed 0 with its default instances per template; `world:SEED`
    and `world:SEED:N` choose another seed and N instances of every template.
    """
    if name == "koans":
        return load_koans()
    match = _WORLD_SPEC.match(name)
    if match is not None:
        from looper_engine.tasks import world

        seed = int(match[1] or 0)
        per_template = int(match[2] or world.DEFAULT_PER_TEMPLATE)
        if per_template < 1:
            raise UserError(f"suite {name!r}: at least one instance per template")
        tasks = _world(seed, per_template, world.default_cache_dir().resolve())
        return [_copy(task) for task in tasks]
    raise UserError(
        f"unknown suite {name!r}; known suites: {', '.join(SUITES)} (also world:SEED and world:SEED:N)"
    )


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
    """The task with this exact id, from any suite. A world id names its own instance, which is
    rebuilt from it; the world is never searched (it is as large as one asks)."""
    if task_id.startswith("world/"):
        from looper_engine.tasks import world

        task = world.task_for_id(task_id)
        if task is not None:
            return task
        raise UserError(
            f"unknown task {task_id!r}: a world id is world/FAMILY/SEED-INDEX/TEMPLATE[.heldout]; "
            "see `looper tasks --suite world`"
        )
    known: list[str] = []
    for suite in SUITES:
        if suite == "world":
            continue
        for task in load_suite(suite):
            if task.id == task_id:
                return task
            known.append(task.id)
    close = difflib.get_close_matches(task_id, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UserError(f"unknown task {task_id!r}{hint}; see `looper tasks`")
