"""Experiment files: the shipped examples load, and every bad file is one line naming the field,
exit code 2, with nothing run and no row written."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from looper_engine.errors import UserError
from looper_engine.evaluation.experiment import load_experiment, parse_experiment, plan_experiment
from looper_engine.store.db import Store

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "experiments"

GOOD = """
model = "scripted:wrong-fix"
chunk_size = 2
[stream]
families = ["off_by_one", "wrong_operator"]
per_family = 2
[[arms]]
name = "base"
"""


def looper(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "looper_engine.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize("name", ["weights_vs_prompt", "adapter_on_top_of_memory", "koans_smoke"])
def test_shipped_examples_load_and_plan(name: str) -> None:
    spec = load_experiment(EXAMPLES / f"{name}.toml")
    plan = plan_experiment(spec, EXAMPLES / f"{name}.toml")
    assert plan.n_chunks >= 2
    assert all(len(c) == spec.chunk_size for c in plan.chunks)
    assert not set(plan.heldout) & {t for c in plan.chunks for t in c}


def test_the_two_questions_are_one_file_each() -> None:
    weights = load_experiment(EXAMPLES / "weights_vs_prompt.toml")
    assert {a.layers for a in weights.arms} == {(), ("adapter",), ("prompt-skill",)}
    on_top = load_experiment(EXAMPLES / "adapter_on_top_of_memory.toml")
    assert {a.layers for a in on_top.arms} == {(), ("memory",), ("adapter", "memory")}


def test_families_come_in_the_given_order_and_are_cut_into_chunks() -> None:
    spec = parse_experiment(GOOD.replace('"off_by_one", "wrong_operator"', '"wrong_operator", "off_by_one"'))
    plan = plan_experiment(spec)
    assert [t.split("/")[0] for c in plan.chunks for t in c] == ["wrong_operator"] * 2 + ["off_by_one"] * 2
    assert [len(c) for c in plan.chunks] == [2, 2]
    assert spec.name == "experiment"


def test_arm_settings_reach_the_agent_config() -> None:
    spec = parse_experiment(
        GOOD
        + """
[agent]
few_shot = false
[[arms]]
name = "no-loops"
kind = "framework"
off = ["loop_detection"]
config = { max_steps = 3 }
"""
    )
    arm = spec.arms[1]
    cfg = arm.agent_config(spec.limits, seed=7, common=spec.agent)
    assert (cfg.loop_detection, cfg.max_steps, cfg.few_shot, cfg.seed) == (False, 3, False, 7)
    assert spec.arms[0].agent_config(spec.limits, 0, spec.agent).loop_detection is True


BAD = {
    "unknown arm kind": (
        GOOD + '[[arms]]\nname = "x"\nkind = "wizard"\n',
        "arms[1].kind: unknown arm kind 'wizard'",
    ),
    "unknown strategy": (
        GOOD.replace("scripted:wrong-fix", "mlx:/nowhere") + '[[arms]]\nname = "x"\nkind = "adapter"\nstrategy = "foo"\n',
        "arms[1].strategy: unknown strategy 'foo' (known: naive, replay, ewc, routing, merge, cumulative, share)",
    ),
    "chunk larger than the stream": (
        GOOD.replace("chunk_size = 2", "chunk_size = 9"),
        "chunk_size: 9 is larger than the stream (4 tasks)",
    ),
    "missing dataset": (
        GOOD.replace('families = ["off_by_one", "wrong_operator"]\nper_family = 2',
                     'source = "swe-bench-cl"\ncurriculum = "missing.json"\nrepos = "."'),
        "stream.curriculum: file not found:",
    ),
    "model that does not load": (
        GOOD + '[[arms]]\nname = "x"\nmodel = "mlx:no/such/model"\n',
        "arms[1].model: no/such/model is not an MLX model folder",
    ),
    "gate that can never reject": (
        GOOD + '[[arms]]\nname = "x"\nkind = "memory"\n',
        "gate: a frozen set of at most 4 tasks can never reject at alpha 0.05 (losing all 4 gives p = 0.0625); "
        "the smallest frozen set that can work has 5 tasks",
    ),
    "misspelt train setting of an arm": (
        GOOD.replace("scripted:wrong-fix", "mlx:/nowhere") + '[[arms]]\nname = "x"\nkind = "adapter"\ntrain = { rnk = 4 }\n',
        "arms[1].train.rnk: unknown setting",
    ),
    "misspelt setting": (
        GOOD + '[[arms]]\nname = "x"\nmodle = "scripted:oracle"\n',
        "arms[1].modle: unknown setting",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_file_is_one_line_naming_the_field_exit_2_and_nothing_written(tmp_path: Path, case: str) -> None:
    text, expected = BAD[case]
    (tmp_path / "exp.toml").write_text(text)
    db = tmp_path / "lab.db"
    asyncio.run(_empty_store(db))  # an existing lab: the bad file must leave it untouched
    r = looper("experiment", "run", "exp.toml", "--db", str(db), "--quiet", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("looper: exp.toml: ") and expected in lines[0], lines[0]
    con = sqlite3.connect(db)
    for table in ("experiments", "exp_cells", "exp_nights", "runs", "episodes"):
        assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
    assert not (tmp_path / "adapters").exists()


async def _empty_store(path: Path) -> None:
    store = await Store.open(path)
    await store.close()


def test_errors_in_memory_name_the_field() -> None:
    with pytest.raises(UserError, match=r"^exp: arms\[0\]\.config\.max_stepz: unknown setting$"):
        parse_experiment(GOOD.replace('name = "base"', 'name = "base"\nconfig = { max_stepz = 3 }'), "exp")
    with pytest.raises(UserError, match=r"^exp: arms\[1\]\.name: two arms are called 'base'$"):
        parse_experiment(GOOD + '[[arms]]\nname = "base"\n', "exp")
    with pytest.raises(UserError, match=r"^exp: arms\[0\]\.name: 'zero-shot' is reserved"):
        parse_experiment(GOOD.replace('name = "base"', 'name = "zero-shot"'), "exp")
    with pytest.raises(UserError, match=r"^exp: not valid TOML"):
        parse_experiment("model = ", "exp")
    with pytest.raises(UserError, match=r"^exp: heldout: off_by_one/date_range is both in the stream and held out"):
        plan_experiment(parse_experiment(GOOD + '[heldout]\ntasks = ["off_by_one/date_range"]\n'), "exp")


def test_a_gate_is_refused_only_when_it_can_never_reject() -> None:
    learner = GOOD + '[[arms]]\nname = "x"\nkind = "memory"\n'
    # A larger alpha, the gate off, or no arm that learns (no nights): accepted.
    for text in (learner + "[gate]\nalpha = 0.1\n", learner + "[gate]\nenabled = false\n", GOOD):
        plan_experiment(parse_experiment(text, "exp"), "exp")
    # A long stream whose frozen set is capped at 4 tasks can never reject either.
    long = learner.replace("per_family = 2", "per_family = 4") + "[gate]\nmax_tasks = 4\n"
    with pytest.raises(UserError, match=r"^exp: gate: a frozen set of at most 4 tasks .* gate\.max_tasks >= 5"):
        plan_experiment(parse_experiment(long, "exp"), "exp")
    plan_experiment(parse_experiment(long.replace("max_tasks = 4", "max_tasks = 5"), "exp"), "exp")
ADAPTERS = GOOD.replace("scripted:wrong-fix", "mlx:/nowhere") + """
[train]
iters = 30
rank = 16
[[arms]]
name = "full"
kind = "adapter"
train = { fine_tune_type = "full", learning_rate = 1e-4 }
[[arms]]
name = "r4"
kind = "adapter"
train = { rank = 4 }
"""


def test_an_arm_trains_with_its_own_settings_over_the_experiments() -> None:
    spec = parse_experiment(ADAPTERS)
    base, full, r4 = spec.arms
    assert spec.arm_train(base) == spec.train
    assert (spec.arm_train(full).fine_tune_type, spec.arm_train(full).learning_rate) == ("full", 1e-4)
    assert (spec.arm_train(full).iters, spec.arm_train(full).rank) == (30, 16)
    assert (spec.arm_train(r4).rank, spec.arm_train(r4).fine_tune_type, spec.arm_train(r4).iters) == (4, "lora", 30)
    assert spec.spec_hash() != parse_experiment(ADAPTERS.replace("rank = 4", "rank = 8")).spec_hash()
    with pytest.raises(UserError, match=r"arms\[1\]\.train: the share strategy needs LoRA adapters"):
        parse_experiment(ADAPTERS.replace('name = "full"', 'name = "full"\nstrategy = "share"'), "exp")
    with pytest.raises(UserError, match=r"arms\[3\]\.train: the merge strategy needs LoRA adapters"):
        parse_experiment(ADAPTERS.replace('iters = 30', 'iters = 30\nfine_tune_type = "full"')
                         + '[[arms]]\nname = "m"\nkind = "adapter"\nstrategy = "merge"\n', "exp")
    with pytest.raises(UserError, match=r"arms\[0\]\.train: only adapter arms train"):
        parse_experiment(GOOD.replace('name = "base"', 'name = "base"\ntrain = { rank = 4 }'), "exp")


WORLD = """
model = "scripted:oracle"
chunk_size = 12
[stream]
source = "world"
chunks = [["range_bound", "comparison"], ["negation"]]
[heldout]
families = ["negation"]
per_family = 4
templates = "heldout"
[[arms]]
name = "base"
"""


def test_a_world_stream_draws_each_chunk_from_its_families_training_templates() -> None:
    from looper_engine.tasks.world import is_heldout

    plan = plan_experiment(parse_experiment(WORLD))
    first, second = plan.chunks
    assert [plan.tasks[t].family for t in first[:4]] == ["range_bound", "comparison"] * 2
    assert sorted(plan.tasks[t].family for t in first) == ["comparison"] * 6 + ["range_bound"] * 6
    assert {plan.tasks[t].family for t in second} == {"negation"} and len(second) == 12
    assert not any(is_heldout(t) for t in first + second)
    # spread over the templates: 12 negation tasks touch every training template
    from looper_engine.tasks.world import train_templates

    assert len({t.rsplit("/", 1)[1] for t in second}) == len(train_templates("negation"))
    # held out: unseen surfaces, drawn with another seed than the stream
    assert len(plan.heldout) == 4 and all(is_heldout(t) for t in plan.heldout)
    assert {t.split("/")[2].split("-")[0] for t in plan.heldout} == {"2"}
    assert plan_experiment(parse_experiment(WORLD)).chunks == plan.chunks  # deterministic


def test_world_stream_mistakes_name_the_field() -> None:
    with pytest.raises(UserError, match=r"stream\.chunks\[1\]\[0\]: unknown world family 'negaton'"):
        plan_experiment(parse_experiment(WORLD.replace('["negation"]]', '["negaton"]]'), "exp"), "exp")
    with pytest.raises(UserError, match=r"stream\.chunks: the world source needs"):
        parse_experiment(WORLD.replace('chunks = [["range_bound", "comparison"], ["negation"]]', ""), "exp")
    with pytest.raises(UserError, match=r"stream\.chunks: chunks of families need source"):
        parse_experiment(GOOD.replace("per_family = 2", 'per_family = 2\nchunks = [["a"]]'), "exp")
