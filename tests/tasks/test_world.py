"""The task world: generated tasks are real, verified, deterministic, learnable and fast to score."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from looper_engine.agent.episode import Episode
from looper_engine.agent.prompts import COMPACT_SYSTEM_PROMPT, build_system_prompt, build_task_prompt
from looper_engine.config import AgentConfig
from looper_engine.errors import UserError
from looper_engine.events import EventBus
from looper_engine.models.scripted import ScriptedBackend
from looper_engine.tasks import world
from looper_engine.tasks.model import Task
from looper_engine.tasks.scoring import apply_gold, score_workspace
from looper_engine.tasks.suites import SUITES, get_task, is_suite, load_suite, select_tasks
from looper_engine.tasks.world.generate import MAX_FILE_CHARS
from looper_engine.tasks.world.template import COMMON_POOLS

TEMPLATES = world.templates()
TEMPLATE_IDS = [t.key for t in TEMPLATES]
#: The longest a whole compact episode may be, by the engine's own token estimate.
EPISODE_TOKENS = 300


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("world-cache")


@pytest.fixture
def cache(shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One cache for the module (as a user has one), so the default suite is generated once."""
    monkeypatch.setenv("LOOPER_CACHE_DIR", str(shared_cache))
    return shared_cache


def copy_workspace(task: Task, dest: Path) -> Path:
    shutil.copytree(task.source_dir, dest)
    return dest


def looper(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "looper_engine.cli", *args],
        capture_output=True, text=True, cwd=cwd, timeout=300, env={**os.environ, **env},
    )


# ---------------------------------------------------------------------------- the catalog


def test_the_catalog_has_eight_families_of_six_templates_each_holding_one_out() -> None:
    assert len(world.families()) >= 8
    for family in world.families():
        assert len(world.templates(family)) >= 6, family
        assert world.heldout_templates(family), f"{family} holds no template out"
        assert {t.key for t in world.train_templates(family)}.isdisjoint(
            t.key for t in world.heldout_templates(family)
        )
    assert len(set(TEMPLATE_IDS)) == len(TEMPLATES)


@pytest.mark.parametrize("template", TEMPLATES, ids=TEMPLATE_IDS)
def test_every_template_yields_verified_instances_whose_fix_is_a_minimal_unique_span(
    template: world.Template,
) -> None:
    for index in range(4):
        inst = world.make_instance(template, seed=0, index=index)
        assert inst.buggy.count(inst.old) == 1
        assert inst.buggy.replace(inst.old, inst.new) == inst.fixed != inst.buggy
        assert len(inst.buggy) <= MAX_FILE_CHARS
        # Nothing to copy: the span names no drawn identifier, except in the bugs about names,
        # whose names come from a short vocabulary.
        words = set(re.findall(r"[A-Za-z_]\w*", f"{inst.old} {inst.new}"))
        drawn = {value for mark, value in inst.names.items() if mark not in template.span_marks}
        assert not words & drawn, (inst.old, inst.new)
        for mark in template.span_marks:
            assert len(template.pools.get(mark, COMMON_POOLS.get(mark, ()))) <= 6
        assert any(case.fails for case in inst.cases)
        assert inst.statement.startswith(f"In {inst.module}: ") and "expected" in inst.statement


#: Two templates of every family, one of them the held-out one (bench_world.py runs them all).
RUNNER_SAMPLE = [t for f in world.families() for t in (world.train_templates(f)[0], world.heldout_templates(f)[0])]


@pytest.mark.parametrize("template", RUNNER_SAMPLE, ids=[t.key for t in RUNNER_SAMPLE])
async def test_every_family_fails_as_generated_and_passes_with_its_gold_patch_under_the_real_runner(
    template: world.Template, cache: Path, tmp_path: Path
) -> None:
    inst = world.make_instance(template, seed=3, index=1)
    task = world.to_task(inst, cache)
    root = copy_workspace(task, tmp_path / "ws")
    before = await score_workspace(task, root, timeout_s=60)
    assert not before.resolved and before.exit_code == 1 and before.tests_failed >= 1
    assert before.error_signature, before.output
    apply_gold(task, root)
    after = await score_workspace(task, root, timeout_s=60)
    assert after.resolved, after.output
    assert (after.tests_passed, after.tests_failed) == (len(inst.cases), 0)


def test_the_tests_file_is_plain_pytest(cache: Path, tmp_path: Path) -> None:
    task = world.generate(seed=0, per_template=1, families=["comparison"], cache_dir=cache)[0]
    root = copy_workspace(task, tmp_path / "ws")
    pytest_run = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    broken = subprocess.run(pytest_run, cwd=root, capture_output=True, text=True, env=env, timeout=120)
    assert broken.returncode == 1 and "failed" in broken.stdout
    apply_gold(task, root)
    fixed = subprocess.run(pytest_run, cwd=root, capture_output=True, text=True, env=env, timeout=120)
    assert fixed.returncode == 0, fixed.stdout


# ---------------------------------------------------------------------------- determinism and cache


def test_the_same_seed_gives_the_same_tasks_and_another_seed_other_ones(tmp_path: Path) -> None:
    one = world.generate(seed=5, per_template=2, cache_dir=tmp_path / "a")
    two = world.generate(seed=5, per_template=2, cache_dir=tmp_path / "b")
    assert [t.id for t in one] == [t.id for t in two]
    for a, b in zip(one, two, strict=True):
        assert (a.statement, a.gold) == (b.statement, b.gold)
        assert {p.name: p.read_text() for p in a.source_dir.iterdir()} == {
            p.name: p.read_text() for p in b.source_dir.iterdir()
        }
    other = world.generate(seed=6, per_template=2, cache_dir=tmp_path / "c")
    assert {t.id for t in other}.isdisjoint(t.id for t in one)
    assert sum(a.statement != b.statement for a, b in zip(one, other, strict=True)) > len(one) // 2


def test_another_process_with_another_hash_seed_generates_the_same_world() -> None:
    code = (
        "import hashlib, sys\n"
        "from looper_engine.tasks import world\n"
        "text = ''.join(i.id + i.buggy + i.tests + i.statement for i in world.instances(seed=9, per_template=2))\n"
        "print(hashlib.sha256(text.encode()).hexdigest())\n"
    )
    digests = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": hash_seed}, timeout=120).stdout.strip()
        for hash_seed in ("1", "2")
    }
    assert len(digests) == 1 and len(digests.pop()) == 64


def test_a_task_folder_is_a_deterministic_path_and_a_damaged_cache_is_rewritten(cache: Path) -> None:
    task = world.generate(seed=2, per_template=1, families=["negation"], cache_dir=cache)[0]
    family, template, seed, index, _ = world.parse_task_id(task.id)
    assert task.source_dir == cache / "world" / f"v{world.VERSION}" / f"s{seed}" / family / f"{index:04d}-{template}"
    assert sorted(p.name for p in task.source_dir.iterdir()) == sorted([task.target_files[0], task.test_command[-1]])
    module = task.source_dir / task.target_files[0]
    good = module.read_text()
    module.write_text("damaged\n")
    again = world.generate(seed=2, per_template=1, families=["negation"], cache_dir=cache)[0]
    assert again.source_dir == task.source_dir and module.read_text() == good


def test_a_second_generation_reads_the_cached_list_and_gives_the_same_tasks(tmp_path: Path) -> None:
    cache = tmp_path / "own-cache"
    first = world.generate(seed=8, per_template=2, families=["bool_op", "acc_init"], cache_dir=cache)
    index_files = list((cache / "world").rglob("index/*.json"))
    assert len(index_files) == 1
    shutil.rmtree(first[0].source_dir)  # a folder lost from the cache is written again
    second = world.generate(seed=8, per_template=2, families=["bool_op", "acc_init"], cache_dir=cache)
    assert [t.model_dump() for t in second] == [t.model_dump() for t in first]
    assert first[0].source_dir.is_dir()
    rebuilt = [world.task_for_id(t.id, cache) for t in first]
    assert [t.model_dump() for t in rebuilt if t] == [t.model_dump() for t in first]
    index_files[0].write_text("not json")  # a damaged list is generated again
    assert [t.id for t in world.generate(seed=8, per_template=2, families=["bool_op", "acc_init"],
                                         cache_dir=cache)] == [t.id for t in first]


def test_an_id_names_its_instance(cache: Path) -> None:
    task = world.generate(seed=4, per_template=1, families=["swapped_args"], cache_dir=cache)[0]
    rebuilt = get_task(task.id)
    assert (rebuilt.id, rebuilt.statement, rebuilt.gold) == (task.id, task.statement, task.gold)
    assert world.task_for_id("world/swapped_args/4-0000/no_such_template") is None
    with pytest.raises(UserError):
        get_task("world/nope/0-0000/x")


# ---------------------------------------------------------------------------- held out of training


def test_held_out_templates_are_flagged_in_the_id_and_never_selected_for_training(cache: Path) -> None:
    tasks = world.generate(seed=0, per_template=2, cache_dir=cache)
    heldout_keys = {t.key for t in world.heldout_templates()}
    flagged = [t for t in tasks if world.is_heldout(t.id)]
    assert flagged and all(t.id.endswith(".heldout") for t in flagged)
    assert {f"{t.family}/{t.id.rsplit('/', 1)[1].removesuffix('.heldout')}" for t in flagged} == heldout_keys
    train = world.training_tasks(tasks)
    assert len(train) == len(tasks) - len(flagged) and not any(world.is_heldout(t.id) for t in train)
    split_train = world.generate(seed=0, per_template=2, split="train", cache_dir=cache)
    assert [t.id for t in split_train] == [t.id for t in train]
    split_held = world.generate(seed=0, per_template=2, split="heldout", cache_dir=cache)
    assert [t.id for t in split_held] == [t.id for t in flagged]


def test_an_evaluation_set_can_exclude_every_file_seen_in_training(cache: Path) -> None:
    train = world.generate(seed=0, per_template=40, families=["index_pick"], cache_dir=cache)
    fresh = world.generate(seed=1, per_template=40, families=["index_pick"], cache_dir=cache)
    seen_files = {(t.source_dir / t.target_files[0]).read_text() for t in train}
    repeated = [t for t in fresh if (t.source_dir / t.target_files[0]).read_text() in seen_files]
    assert repeated, "small templates repeat files across seeds; this test needs some"
    kept = world.exclude_seen(fresh, train)
    assert len(kept) == len(fresh) - len(repeated)
    assert not {(t.source_dir / t.target_files[0]).read_text() for t in kept} & seen_files


# ---------------------------------------------------------------------------- the suite


def test_world_is_a_suite_beside_the_koans(cache: Path) -> None:
    assert "world" in SUITES and is_suite("world:3:20") and not is_suite("worlds")
    tasks = load_suite("world")
    assert len(tasks) == world.DEFAULT_PER_TEMPLATE * len(TEMPLATES)
    assert {t.suite for t in tasks} == {"world"} and {t.family for t in tasks} == set(world.families())
    assert [t.id for t in tasks] == sorted(t.id for t in tasks)
    picked = select_tasks(tasks, ["world/comparison"])
    assert picked and {t.family for t in picked} == {"comparison"}
    assert len(load_suite("world:7:2")) == 2 * len(TEMPLATES)
    assert load_suite("world:7:2")[0].id.startswith("world/acc_init/7-0000/")
    for bad in ("world:x", "world:1:0", "worlds"):
        with pytest.raises(UserError):
            load_suite(bad)
    with pytest.raises(UserError, match="unknown world family"):
        world.generate(families=["nope"], cache_dir=cache)


def test_looper_tasks_lists_the_world(cache: Path, tmp_path: Path) -> None:
    out = looper("tasks", "--suite", "world:1:1", env={"LOOPER_CACHE_DIR": str(cache)}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.split()) == len(TEMPLATES) and "world/range_bound/1-0000/sum_first" in out.stdout
    bad = looper("tasks", "--suite", "nowhere", env={"LOOPER_CACHE_DIR": str(cache)}, cwd=tmp_path)
    assert bad.returncode == 2 and "unknown suite" in bad.stderr


# ---------------------------------------------------------------------------- the oracle and the engine


def test_the_oracle_resolves_world_tasks_through_looper_run_with_read_edit_done(cache: Path, tmp_path: Path) -> None:
    db = tmp_path / "looper.db"
    out = looper(
        "run", "--suite", "world:11:1", "--tasks", "world/*/11-0000/*", "--model", "scripted:oracle",
        "--prompt-profile", "compact", "--rate", "0", "--concurrency", "2", "--quiet", "--db", str(db),
        env={"LOOPER_CACHE_DIR": str(cache)}, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert f"resolved {len(TEMPLATES)}/{len(TEMPLATES)}" in out.stdout
    con = sqlite3.connect(db)
    tools = con.execute(
        "SELECT e.task_id, group_concat(s.tool, ' ') FROM episodes e JOIN steps s ON s.episode_id = e.id "
        "GROUP BY e.id ORDER BY e.task_id"
    ).fetchall()
    assert len(tools) == len(TEMPLATES) and {seq for _, seq in tools} == {"read edit done"}
    # `looper synth` turns those episodes into training data whose turns parse.
    data = tmp_path / "data"
    synth = looper("synth", "--db", str(db), "--out", str(data), env={"LOOPER_CACHE_DIR": str(cache)}, cwd=tmp_path)
    assert synth.returncode == 0, synth.stderr
    rows = [json.loads(line) for name in ("train", "valid") for line in (data / f"{name}.jsonl").read_text().splitlines()]
    assert len(rows) == 3 * len(TEMPLATES)
    assert all(row["messages"][0]["content"] == COMPACT_SYSTEM_PROMPT for row in rows)


async def test_a_compact_episode_fits_in_300_tokens_for_every_template(cache: Path, tmp_path: Path) -> None:
    config = AgentConfig(prompt_profile="compact")
    assert len(build_system_prompt(config)) // 4 < 60
    longest = 0
    for template in TEMPLATES:
        task = world.to_task(world.make_instance(template, seed=0, index=0), cache)
        assert build_task_prompt(task, config) == task.statement
        backend = ScriptedBackend("oracle")
        episode = Episode(task, backend, config, EventBus(), workspace_parent=tmp_path)
        result = await episode.run()
        assert result.resolved and result.steps == 3
        history = episode.window.history
        assert [m.role for m in history] == ["system", "user", "assistant", "user", "assistant", "user", "assistant"]
        tokens = backend.count_tokens(history)
        longest = max(longest, tokens)
    assert longest <= EPISODE_TOKENS


async def test_the_standard_profile_still_runs_world_tasks_with_their_tests(cache: Path, tmp_path: Path) -> None:
    task = world.generate(seed=0, per_template=1, families=["arith_op"], cache_dir=cache)[0]
    episode = Episode(task, ScriptedBackend("oracle"), AgentConfig(), EventBus(), workspace_parent=tmp_path)
    result = await episode.run()
    assert result.resolved and result.steps == 4  # read, edit, the tests with pytest, done


# ---------------------------------------------------------------------------- scoring


async def test_scoring_stops_an_endless_loop(cache: Path, tmp_path: Path) -> None:
    template = next(t for t in world.templates("range_bound") if t.name == "find_while")
    task = world.to_task(world.make_instance(template, seed=0, index=0), cache)
    root = copy_workspace(task, tmp_path / "ws")
    apply_gold(task, root)
    module = root / task.target_files[0]
    text = module.read_text()
    assert text.count(" += 1") == 1
    module.write_text(text.replace(" += 1", " += 0"))  # the index never moves
    result = await score_workspace(task, root, timeout_s=60)
    assert not result.resolved and result.exit_code == 1
    assert result.error_signature.startswith("Timeout"), result.output


async def test_the_runner_reports_an_import_error_and_a_file_without_tests(cache: Path, tmp_path: Path) -> None:
    task = world.generate(seed=0, per_template=1, families=["negation"], cache_dir=cache)[0]
    root = copy_workspace(task, tmp_path / "ws")
    (root / task.target_files[0]).write_text("def broken(:\n")
    broken = await score_workspace(task, root, timeout_s=60)
    assert not broken.resolved and broken.exit_code == 2 and broken.error_signature.startswith("SyntaxError")
    test_file = task.test_command[-1]
    (root / test_file).write_text("x = 1\n")
    empty = await score_workspace(task, root, timeout_s=60)
    assert not empty.resolved and empty.exit_code == 5


# ---------------------------------------------------------------------------- the lab


async def test_the_new_run_form_runs_the_world(cache: Path, tmp_path: Path) -> None:
    from textual.widgets import Input, Select

    from looper_tui.app import LooperApp
    from looper_tui.screens.home import HomeScreen
    from looper_tui.screens.live import LiveScreen
    from looper_tui.screens.new_run import NewRunScreen

    (tmp_path / "workspaces").mkdir()
    app = LooperApp(tmp_path / "looper.db", blink=False, config_folder=tmp_path / "config",
                    workspace_parent=tmp_path / "workspaces")
    async with app.run_test(size=(100, 36)) as pilot:
        while not isinstance(app.screen, HomeScreen):
            await pilot.pause(0.02)
        await pilot.press("n")
        while not isinstance(app.screen, NewRunScreen):
            await pilot.pause(0.02)
        app.screen.query_one("#suite", Select).value = "world"
        app.screen.query_one("#tasks", Input).value = "world/comparison/0-0000/*"
        app.screen.query_one("#rate", Input).value = "0"
        await pilot.press("ctrl+s")
        while not isinstance(app.screen, LiveScreen):
            await pilot.pause(0.02)
        (runner,) = app.lab.runners.values()
        assert runner.suite == "world"
        assert [e.task.id.rsplit("/", 1)[1] for e in runner.episodes] == sorted(
            t.name + (".heldout" if t.heldout else "") for t in world.templates("comparison")
        )
        def states() -> list:  # the lab's views are immutable: read them afresh
            return [app.lab.state.episode(e.id) for e in runner.episodes]

        for _ in range(3000):  # a guard against hanging, not a timing
            if all(s is not None and s.finished is not None for s in states()):
                break
            await pilot.pause(0.02)
        states = states()
        assert [s.status for s in states] == ["resolved"] * len(states)
