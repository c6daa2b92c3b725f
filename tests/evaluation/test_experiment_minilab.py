"""The mini-lab experiments: the shipped files plan n >= 50 tasks per evaluated chunk from the
task world, and a small one runs end to end on the real mlx-lm stack with the new arms: full
fine-tuning, the share strategy and the cumulative upper bound, each learning from the
oracle's runs of world chunks."""

from __future__ import annotations

import asyncio
import importlib.util
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from looper_engine.consolidation.adapter_files import read_adapter_config
from looper_engine.evaluation.cycle import ExperimentRunner
from looper_engine.evaluation.experiment import load_experiment, parse_experiment, plan_experiment
from looper_engine.tasks.world import is_heldout

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "experiments"
MINILAB = sorted(EXAMPLES.glob("minilab_*.toml"))


def test_the_mini_lab_files_are_there() -> None:
    names = {p.stem for p in MINILAB}
    assert {"minilab_forgetting", "minilab_lora_vs_full", "minilab_prompt_vs_weights"} <= names


@pytest.mark.parametrize("path", MINILAB, ids=[p.stem for p in MINILAB])
def test_mini_lab_files_plan_fifty_tasks_per_chunk_on_the_mini_lab_model(path: Path) -> None:
    spec = load_experiment(path)
    plan = plan_experiment(spec, path)
    assert spec.model == "mlx:models/minilab" and spec.agent["prompt_profile"] == "compact"
    assert plan.n_chunks >= 2 and all(len(c) >= 50 for c in plan.chunks) and len(plan.heldout) >= 50
    stream = [t for c in plan.chunks for t in c]
    assert not any(is_heldout(t) for t in stream) and all(is_heldout(t) for t in plan.heldout)
    assert all(a.teacher == "scripted:oracle" for a in spec.arms if a.learns)


def test_the_forgetting_files_hold_every_strategy_between_naive_and_cumulative() -> None:
    files = [p for p in MINILAB if p.stem.startswith("minilab_forgetting")]
    specs = {p.stem: load_experiment(p) for p in files}
    strategies = {a.strategy_name() for s in specs.values() for a in s.arms if a.learns}
    assert strategies == {"naive", "replay", "ewc", "routing", "merge", "cumulative", "share"}
    bounds = specs["minilab_forgetting"]
    assert {"base", "naive", "cumulative"} <= {a.name for a in bounds.arms}
    # The other parts are compared with part 1's bounds: everything but the arms is the same.
    same = ("model", "seeds", "chunk_size", "stream", "heldout", "agent", "limits", "train", "gate")
    for name, spec in specs.items():
        assert "base" in {a.name for a in spec.arms}, name
        assert spec.model_dump(include=set(same)) == bounds.model_dump(include=set(same)), name


def test_the_prompt_and_weight_layers_run_on_one_stream_with_one_setting() -> None:
    first = load_experiment(EXAMPLES / "minilab_prompt_vs_weights.toml")
    second = load_experiment(EXAMPLES / "minilab_prompt_vs_weights_adapters.toml")
    kinds = {a.kind for s in (first, second) for a in s.arms}
    assert kinds == {"base", "prompt-skill", "memory", "adapter", "memory+adapter"}
    same = {"model", "seeds", "chunk_size", "stream", "heldout", "agent", "limits", "train", "gate"}
    assert first.model_dump(include=same) == second.model_dump(include=same)


def test_lora_vs_full_compares_full_weights_with_three_ranks() -> None:
    spec = load_experiment(EXAMPLES / "minilab_lora_vs_full.toml")
    trains = {a.name: spec.arm_train(a) for a in spec.arms if a.learns}
    assert trains["full"].fine_tune_type == "full"
    assert sorted(t.rank for n, t in trains.items() if n != "full") == [4, 16, 64]
    assert len({(t.iters, t.batch_size, t.learning_rate) for t in trains.values()}) == 1  # same budget


SPEC = """
name = "mini"
model = "mlx:{model}"
chunk_size = 2
[stream]
source = "world"
chunks = [["negation"], ["bool_op"]]
[agent]
prompt_profile = "compact"
[limits]
max_steps = 2
max_tokens_per_turn = 24
concurrency = 2
[train]
iters = 2
batch_size = 2
steps_per_report = 1
steps_per_eval = 2
save_every = 2
[gate]
enabled = false
measure = false
[[arms]]
name = "full"
kind = "adapter"
teacher = "scripted:oracle"
train = {{ fine_tune_type = "full" }}
[[arms]]
name = "share"
kind = "adapter"
strategy = "share"
strategy_options = {{ basis_rank = 4 }}
teacher = "scripted:oracle"
[[arms]]
name = "cumulative"
kind = "adapter"
strategy = "cumulative"
teacher = "scripted:oracle"
"""


@pytest.mark.skipif(importlib.util.find_spec("mlx_lm") is None, reason="needs mlx-lm (the mlx extra)")
def test_full_share_and_cumulative_arms_train_every_night_and_evaluate_with_it(
    tmp_path: Path,
) -> None:
    from looper_engine.models.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    plan = plan_experiment(parse_experiment(SPEC.format(model=model), "mini.toml"), "mini.toml")
    outcome: Any = asyncio.run(
        ExperimentRunner(plan, tmp_path / "lab.db", adapters_dir=tmp_path / "ad").run()
    )
    assert outcome.status == "finished" and outcome.trained == 6
    root = tmp_path / "ad" / "mini"
    assert read_adapter_config(root / "full/s0/c1").fine_tune_type == "full"
    share = read_adapter_config(root / "share/s0/c1")
    assert share.lora_parameters.rank == 4
    assert share.looper["share_basis_from"] == [str((root / "share/s0/c0").resolve())]
    first, second = (read_adapter_config(root / f"cumulative/s0/c{i}").looper for i in (0, 1))
    assert second["train_samples"] > first["train_samples"] and second["init_adapter"] is None
    con = sqlite3.connect(tmp_path / "lab.db")
    # The gate is off and not measured: no night ran the frozen set.
    assert con.execute("SELECT count(*) FROM exp_cells WHERE phase IN ('candidate', 'incumbent')").fetchone() == (0,)
    nights = con.execute("SELECT adopted, verdict FROM exp_nights").fetchall()
    assert len(nights) == 6 and all(a == 1 and "not measured" in v for a, v in nights)
    for arm in ("full", "share", "cumulative"):
        models = {
            m
            for (m,) in con.execute(
                "SELECT e.model FROM exp_cells c JOIN episodes e ON e.id = c.episode_id "
                "WHERE c.arm=? AND c.phase = 'eval' AND c.cycle=1 AND c.reused=0",
                (arm,),
            )
        }
        assert models and all(m.endswith("/c1") for m in models), (arm, models)
