from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import pytest
from cl_helpers import family_rows, lora_config, lora_weights

from looper_engine.consolidation.adapter_files import (
    load_adapter_weights,
    read_adapter_config,
    verify_adapter_loads,
    write_adapter_atomically,
)
from looper_engine.consolidation.strategies import (
    STRATEGIES,
    StrategyOutcome,
    get_strategy,
    merge_adapters,
    read_routes,
)
from looper_engine.consolidation.train import TrainConfig
from looper_engine.errors import UserError

TINY_RUN = TrainConfig(iters=3, steps_per_report=1, steps_per_eval=3, save_every=3)


@pytest.fixture(scope="module")
def previous(tiny_model: Path, rows: list, tmp_path_factory: pytest.TempPathFactory) -> StrategyOutcome:
    """Chunk 1: the `files` family, learned well enough that its Fisher is informative."""
    out = tmp_path_factory.mktemp("chunk1") / "adapter"
    files = family_rows(rows, "files")
    return get_strategy("naive").consolidate(
        tiny_model, files, [], [], out, TrainConfig(iters=12, steps_per_eval=12), valid_rows=files
    )


def test_unknown_names_and_options_are_user_errors() -> None:
    assert STRATEGIES == ("naive", "replay", "ewc", "routing", "merge", "cumulative", "share")
    with pytest.raises(
        UserError, match="known strategies: naive, replay, ewc, routing, merge, cumulative, share"
    ):
        get_strategy("distill")
    with pytest.raises(UserError, match="bad option for strategy replay"):
        get_strategy("replay", ratio=0.3)
    with pytest.raises(UserError, match="replay_ratio"):
        get_strategy("replay", replay_ratio=1.0)
    assert get_strategy(" EWC ").name == "ewc"
    with pytest.raises(UserError, match="always trains from the base model"):
        get_strategy("cumulative", warm_start=True)
    with pytest.raises(UserError, match="basis_rank"):
        get_strategy("share", basis_rank=0)


def test_replay_mixes_the_requested_share_of_earlier_rows(rows: list) -> None:
    history = [family_rows(rows, "files"), family_rows(rows, "where")]
    new = family_rows(rows, "tests")
    plan = get_strategy("replay", replay_ratio=0.5, seed=1).prepare(new, history, [])
    mixed = plan.jobs[0].train_rows
    earlier = [r for chunk in history for r in chunk]
    assert len(mixed) == 2 * len(new)
    assert sum(r in earlier for r in mixed) == len(new)
    assert all(r in mixed for r in new)
    again = get_strategy("replay", replay_ratio=0.5, seed=1).prepare(new, history, [])
    assert again.jobs[0].train_rows == mixed
    other = get_strategy("replay", replay_ratio=0.5, seed=2).prepare(new, history, [])
    assert other.jobs[0].train_rows != mixed
    quarter = get_strategy("replay", replay_ratio=0.25).prepare(new, history, [])
    assert len(quarter.jobs[0].train_rows) == len(new) + round(len(new) / 3)


def test_naive_continues_the_last_adapter_on_new_rows_only(
    previous: StrategyOutcome, tiny_model: Path, rows: list, tmp_path: Path
) -> None:
    new = family_rows(rows, "where")
    files = family_rows(rows, "files")
    plan = get_strategy("naive").prepare(new, [files], [previous.adapter_dir], valid_rows=files)
    assert plan.jobs[0].train_rows == new and plan.jobs[0].init_adapter == previous.adapter_dir
    outcome = get_strategy("naive").run(tiny_model, plan, tmp_path / "c2", TINY_RUN)
    assert outcome.status == "finished" and outcome.adapter_dir == tmp_path / "c2"
    looper = read_adapter_config(outcome.adapter_dir).looper
    assert looper["strategy"] == "naive" and looper["init_adapter"] == str(previous.adapter_dir)
    # warm start: before its first step the model is the previous adapter, not the base model
    before, after = previous.results["main"].curve[0].val_loss, previous.results["main"].final_val_loss()
    assert after < before / 2
    assert outcome.results["main"].curve[0].val_loss == pytest.approx(after, rel=1e-5)
    verify_adapter_loads(tiny_model, outcome.adapter_dir)


def test_replay_runs(previous: StrategyOutcome, tiny_model: Path, rows: list, tmp_path: Path) -> None:
    outcome = get_strategy("replay").consolidate(
        tiny_model, family_rows(rows, "where"), [family_rows(rows, "files")], [previous.adapter_dir],
        tmp_path / "r", TINY_RUN,
    )  # fmt: skip
    assert outcome.status == "finished"
    assert read_adapter_config(outcome.adapter_dir).looper["train_samples"] == 5 + 5


def drift(adapter: Path, anchor: Path) -> float:
    a, b = load_adapter_weights(adapter), load_adapter_weights(anchor)
    return sum(mx.sum((a[k] - b[k]) ** 2).item() for k in a)


def test_ewc_holds_the_weights_earlier_data_needs(
    previous: StrategyOutcome, tiny_model: Path, rows: list, tmp_path: Path
) -> None:
    new, history = family_rows(rows, "tests"), [family_rows(rows, "files")]
    run = TrainConfig(iters=4, steps_per_eval=4)
    naive = get_strategy("naive").consolidate(
        tiny_model, new, history, [previous.adapter_dir], tmp_path / "n", run
    )
    ewc = get_strategy("ewc", ewc_lambda=1000.0).consolidate(
        tiny_model, new, history, [previous.adapter_dir], tmp_path / "e", run
    )
    assert ewc.status == "finished"
    looper = read_adapter_config(ewc.adapter_dir).looper
    assert looper["fisher_samples"] == 6 and looper["ewc_lambda"] == 1000.0
    assert drift(ewc.adapter_dir, previous.adapter_dir) < 0.5 * drift(naive.adapter_dir, previous.adapter_dir)
    # with nothing earlier to protect it says so and trains like naive
    plan = get_strategy("ewc").prepare(new, [], [])
    assert "nothing to protect" in plan.notes[0]


def test_routing_trains_one_adapter_per_family_and_keeps_the_others(
    previous: StrategyOutcome, tiny_model: Path, rows: list, tmp_path: Path
) -> None:
    first = get_strategy("routing").consolidate(
        tiny_model, family_rows(rows, "files", "where"), [], [], tmp_path / "r1", TINY_RUN
    )
    assert set(first.routes) == {"files", "where"}
    assert first.route("files") == tmp_path / "r1" / "files"
    assert first.route("tests") is None  # an unseen family runs on the base model
    assert read_adapter_config(first.route("where")).looper["family"] == "where"

    plan = get_strategy("routing").prepare(
        family_rows(rows, "where", "tests"),
        [family_rows(rows, "files", "where")],
        list(first.routes.values()),
    )
    jobs = {j.name: j for j in plan.jobs}
    assert set(jobs) == {"tests", "where"}
    assert jobs["where"].init_adapter == first.routes["where"] and jobs["tests"].init_adapter is None
    assert all(row in family_rows(rows, "where") for row in jobs["where"].train_rows)
    second = get_strategy("routing").run(tiny_model, plan, tmp_path / "r2", TINY_RUN)
    assert second.routes["files"] == first.routes["files"]  # carried over unchanged
    assert second.routes["tests"] == tmp_path / "r2" / "tests"
    assert read_routes(tmp_path / "r2") == second.routes
    for adapter in second.routes.values():
        verify_adapter_loads(tiny_model, adapter)


def test_merge_averages_every_chunk_and_the_result_loads(
    previous: StrategyOutcome, tiny_model: Path, rows: list, tmp_path: Path
) -> None:
    strategy = get_strategy("merge")
    c1 = strategy.consolidate(tiny_model, family_rows(rows, "files"), [], [], tmp_path / "m1", TINY_RUN)
    c2 = strategy.consolidate(
        tiny_model,
        family_rows(rows, "where"),
        [family_rows(rows, "files")],
        [c1.adapter_dir],
        tmp_path / "m2",
        TINY_RUN,
    )
    assert c2.status == "finished" and c2.adapter_dir == tmp_path / "m2"
    verify_adapter_loads(tiny_model, c2.adapter_dir)
    chunk1, chunk2 = tmp_path / "m1" / "chunk", tmp_path / "m2" / "chunk"
    assert read_adapter_config(c2.adapter_dir).looper["merged_from"] == [str(chunk1), str(chunk2)]
    merged, a, b = (load_adapter_weights(p) for p in (c2.adapter_dir, chunk1, chunk2))
    for k in merged:
        assert mx.allclose(merged[k], (a[k] + b[k]) / 2, atol=1e-6).item()
    # a third chunk averages all three chunks, not the running merge with the newest
    plan = strategy.prepare(family_rows(rows, "tests"), [], [c1.adapter_dir, c2.adapter_dir])
    assert plan.merge_sources == [chunk1, chunk2]


def test_delta_merge_is_the_exact_average_of_the_updates(tiny_model: Path, tmp_path: Path) -> None:
    one = write_adapter_atomically(tmp_path / "one", lora_weights(1, rank=4), lora_config(rank=4, scale=2.0))
    two = write_adapter_atomically(tmp_path / "two", lora_weights(2, rank=8), lora_config(rank=8, scale=3.0))
    merged = merge_adapters([one, two], tmp_path / "merged", mode="delta", weights=[0.25, 0.75])
    cfg = read_adapter_config(merged)
    assert cfg.lora_parameters.rank == 12 and cfg.looper["merge_mode"] == "delta"
    w1, w2, wm = (load_adapter_weights(p) for p in (one, two, merged))
    key = "model.layers.1.self_attn.q_proj"

    def delta(w: dict, scale: float) -> mx.array:
        return scale * (w[f"{key}.lora_a"] @ w[f"{key}.lora_b"])

    expected = 0.25 * delta(w1, 2.0) + 0.75 * delta(w2, 3.0)
    assert mx.allclose(delta(wm, cfg.lora_parameters.scale), expected, atol=1e-4).item()
    verify_adapter_loads(tiny_model, merged)
    with pytest.raises(UserError, match="use mode 'delta'"):
        merge_adapters([one, two], tmp_path / "ab", mode="ab")
    assert not (tmp_path / "ab").exists()
    meta = json.loads((merged / "adapter_config.json").read_text())["looper"]
    assert meta["merge_weights"] == [0.25, 0.75]


def test_cumulative_retrains_from_the_base_on_every_chunk_seen(
    previous: StrategyOutcome, tiny_model: Path, rows: list, tmp_path: Path
) -> None:
    files, where, tests = (family_rows(rows, f) for f in ("files", "where", "tests"))
    plan = get_strategy("cumulative", seed=3).prepare(tests, [files, where], [previous.adapter_dir])
    job = plan.jobs[0]
    assert job.init_adapter is None  # never continues an earlier adapter
    assert sorted(map(str, job.train_rows)) == sorted(map(str, files + where + tests))
    assert job.train_rows != files + where + tests  # shuffled with the seed
    assert get_strategy("cumulative", seed=3).prepare(tests, [files, where], []).jobs == plan.jobs

    outcome = get_strategy("cumulative").consolidate(
        tiny_model, where, [files], [previous.adapter_dir], tmp_path / "c", TINY_RUN, valid_rows=files
    )
    assert outcome.status == "finished"
    looper = read_adapter_config(outcome.adapter_dir).looper
    assert looper["train_samples"] == len(files) + len(where) and looper["init_adapter"] is None
    # its first evaluation is the base model's, not the previous adapter's
    base_loss = previous.results["main"].curve[0].val_loss
    assert outcome.results["main"].curve[0].val_loss == pytest.approx(base_loss, rel=1e-5)
    verify_adapter_loads(tiny_model, outcome.adapter_dir)


def _residual(vectors: mx.array, basis: mx.array) -> float:
    """How much of `vectors` (columns) lies outside the column span of `basis`."""
    q, _ = mx.linalg.qr(basis, stream=mx.cpu)
    rest = vectors - q @ (q.T @ vectors)
    return (mx.sum(rest**2) / mx.sum(vectors**2)).item()


def test_share_trains_only_coefficients_in_the_earlier_adapters_basis(
    previous: StrategyOutcome, tiny_model: Path, rows: list, tmp_path: Path
) -> None:
    files, where = family_rows(rows, "files"), family_rows(rows, "where")
    first = get_strategy("share").prepare(files, [], [])
    assert first.basis_sources == [] and "ordinary LoRA" in first.notes[0]

    share = get_strategy("share", basis_rank=16)
    run = TrainConfig(iters=6, steps_per_report=1, steps_per_eval=6, save_every=6)
    outcome = share.consolidate(
        tiny_model, where, [files], [previous.adapter_dir], tmp_path / "s", run, valid_rows=files
    )
    assert outcome.status == "finished"
    cfg = read_adapter_config(outcome.adapter_dir)
    assert cfg.fine_tune_type == "lora" and cfg.lora_parameters.rank == 16
    assert cfg.looper["share_basis_from"] == [str(previous.adapter_dir.resolve())]
    verify_adapter_loads(tiny_model, outcome.adapter_dir)
    # the rank-16 basis spans the rank-16 previous adapter exactly, so the warm start is
    # the previous adapter itself: same loss on the earlier family before the first step
    curve = outcome.results["main"].curve
    assert curve[0].val_loss == pytest.approx(previous.results["main"].final_val_loss(), rel=1e-4)
    # the new update stays inside the earlier update's input and output subspaces ...
    new, old = load_adapter_weights(outcome.adapter_dir), load_adapter_weights(previous.adapter_dir)
    key = "model.layers.1.self_attn.q_proj"
    assert _residual(new[f"{key}.lora_a"], old[f"{key}.lora_a"]) < 1e-8
    assert _residual(new[f"{key}.lora_b"].T, old[f"{key}.lora_b"].T) < 1e-8
    # ... and yet it moved: the coefficients were trained
    moved = sum(
        mx.sum(
            (new[f"{k}.lora_a"] @ new[f"{k}.lora_b"] - old[f"{k}.lora_a"] @ old[f"{k}.lora_b"]) ** 2
        ).item()
        for k in {n.rsplit(".", 1)[0] for n in new}
    )
    assert moved > 1e-6

    # a smaller basis keeps the strongest directions only
    small = get_strategy("share", basis_rank=4).consolidate(
        tiny_model, where, [files], [previous.adapter_dir], tmp_path / "s4", TINY_RUN
    )
    assert read_adapter_config(small.adapter_dir).lora_parameters.rank == 4
    assert 0 < read_adapter_config(small.adapter_dir).looper["share_energy_min"] < 1
