"""Choosing tasks: suites by name, tasks by id globs, one task by id."""

from __future__ import annotations

import pytest

from looper_engine.errors import UserError
from looper_engine.tasks.koans import load_koans
from looper_engine.tasks.suites import SUITES, get_task, load_suite, select_tasks


def test_koans_suite() -> None:
    assert "koans" in SUITES
    assert [task.id for task in load_suite("koans")] == [task.id for task in load_koans()]


def test_unknown_suite_names_the_known_ones() -> None:
    with pytest.raises(UserError, match="unknown suite 'kaons'; known suites: koans"):
        load_suite("kaons")


def test_no_patterns_selects_everything() -> None:
    tasks = load_koans()
    assert select_tasks(tasks, None) == tasks
    assert select_tasks(tasks, []) == tasks


def test_glob_patterns() -> None:
    tasks = load_koans()
    chosen = select_tasks(tasks, ["off_by_one/*"])
    assert chosen and all(task.id.startswith("off_by_one/") for task in chosen)
    assert len(chosen) == sum(task.family == "off_by_one" for task in tasks)
    assert [task.id for task in select_tasks(tasks, ["*/paginate"])] == ["off_by_one/paginate"]


def test_a_bare_family_name_selects_the_family() -> None:
    tasks = load_koans()
    assert select_tasks(tasks, ["async"]) == select_tasks(tasks, ["async/*"])


def test_several_patterns_keep_suite_order_without_duplicates() -> None:
    tasks = load_koans()
    chosen = select_tasks(tasks, ["off_by_one/paginate", "async/*", "async/gather_list"])
    ids = [task.id for task in chosen]
    assert ids == sorted(ids)
    assert len(ids) == len(set(ids)) == 1 + sum(task.family == "async" for task in tasks)


def test_a_pattern_matching_nothing_is_an_error() -> None:
    with pytest.raises(UserError) as info:
        select_tasks(load_koans(), ["async/*", "xyz"])
    assert str(info.value) == "no task matches 'xyz'; see `looper tasks`"


def test_get_task() -> None:
    task = get_task("off_by_one/paginate")
    assert task.family == "off_by_one" and task.suite == "koans"


def test_unknown_task_suggests_a_close_id() -> None:
    with pytest.raises(
        UserError, match=r"unknown task 'off_by_one/paginat' \(did you mean 'off_by_one/paginate'\?\)"
    ):
        get_task("off_by_one/paginat")
    with pytest.raises(UserError, match="unknown task 'zzz'; see `looper tasks`"):
        get_task("zzz")
