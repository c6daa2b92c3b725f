"""What results.py computes from recorded cells, with the task as the unit: flips by per-task
rate when the arms ran different numbers of seeds, CL-metric intervals only where they can be
trusted, CL-F1 outside [0, 1] flagged with its reason."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from looper_engine.evaluation.clstats import ChunkScores, interval_method, interval_samples, summarize_batch
from looper_engine.evaluation.metrics import summarize_matrix
from looper_engine.evaluation.report import render_markdown
from looper_engine.evaluation.results import (
    NO_INTERVAL,
    ArmResults,
    ExperimentResults,
    _flips,
    cl_summary,
)
from looper_engine.store.experiments import CellRow


def cell(arm: str, task: str, resolved: bool, *, seed: int = 0, cycle: int = 0, chunk: int = 0) -> CellRow:
    return CellRow(exp_id="e", arm=arm, seed=seed, cycle=cycle, phase="eval", chunk=chunk, task_id=task,
                   episode_id=f"{arm}-{task}-{seed}-{cycle}", resolved=resolved, fingerprint="f")


def test_flips_compare_rates_when_the_arms_ran_different_seed_counts() -> None:
    base = [cell("zero-shot", "a", r, seed=s) for s, r in enumerate([True, True, False])]  # 2/3
    base += [cell("zero-shot", "b", r, seed=s) for s, r in enumerate([True, False, False])]  # 1/3
    base += [cell("zero-shot", "c", r, seed=s) for s, r in enumerate([True, False])]  # 1/2
    arm = [cell("x", "a", True)]  # 1/1: higher rate, though fewer successes
    arm += [cell("x", "b", r, seed=s) for s, r in enumerate([True] + [False] * 5)]  # 1/6
    arm += [cell("x", "c", r, seed=s) for s, r in enumerate([True, True, False, False])]  # 2/4
    flips = {f.task_id: f for f in _flips(base, arm, {"a": 0, "b": 0, "c": 0})}
    assert flips["a"].change == "fixed" and (flips["a"].base_k, flips["a"].base_n) == (2, 3)
    assert (flips["a"].arm_k, flips["a"].arm_n) == (1, 1)
    assert flips["b"].change == "broken" and flips["b"].arm_n == 6
    assert flips["c"].change == "same (mixed)"


def chunks_of(sizes: list[int]) -> list[list[str]]:
    return [[f"c{j}t{i}" for i in range(m)] for j, m in enumerate(sizes)]


def test_cl_f1_above_one_is_flagged_with_its_reason() -> None:
    chunks = chunks_of([4, 4])
    # After chunk 1: chunk 1 at 3/4, chunk 2 (not yet learned) at 0/4; at the end both at 4/4.
    arm = [cell("x", t, i > 0, cycle=0, chunk=0) for i, t in enumerate(chunks[0])]
    arm += [cell("x", t, False, cycle=0, chunk=1) for t in chunks[1]]
    arm += [cell("x", t, True, cycle=1, chunk=j) for j in (0, 1) for t in chunks[j]]
    zero = [cell("zero-shot", t, False, chunk=j) for j in (0, 1) for t in chunks[j]]
    summary = cl_summary(arm, zero, chunks)
    # P = (3/4 + 1) / 2 = 0.875; F = 3/4 - 1 = -0.25, S = 1.25; CL-F1 = 2PS / (P + S) = 1.029
    f1 = summary["cl_f_beta"]
    assert f1.value == pytest.approx(2 * 0.875 * 1.25 / 2.125)
    assert "CL-F1 = 1.03 is outside [0, 1]" in f1.note and "forgetting is negative (-0.25" in f1.note
    assert summary["forgetting"].value == pytest.approx(-0.25)
    # 2 chunks of 4 tasks, one seed: no interval method covers; none is printed.
    assert all(v.lo is None and v.note.startswith(NO_INTERVAL) for v in summary.values())
    results = ExperimentResults(
        exp_id="e", status="finished", model="m", seeds=[0], chunks=chunks, heldout=[], zero_shot=[0.0, 0.0],
        zero_shot_counts=[(0, 4), (0, 4)],
        arms=[ArmResults(arm="x", kind="adapter", model="m", matrix=[[0.75, 0.0], [1.0, 1.0]],
                         counts=[[(3, 4), (0, 4)], [(4, 4), (4, 4)]], complete=True, summary=summary)],
    )
    text = render_markdown(results, {})
    assert "| x | 8 tasks x 1 seed | +1.00† |" in text
    assert f"- † x: ACC, Forgetting, FT, BWT, AULC, CL-P, CL-S, CL-F1: {NO_INTERVAL} (8 tasks x 1 seed)." in text
    assert "- **x**, CL-F1: CL-F1 = 1.03 is outside [0, 1]: forgetting is negative" in text


def test_the_batched_metrics_are_the_scalar_ones() -> None:
    rng = np.random.default_rng(5)
    a = rng.random((6, 4, 4))
    z = rng.random((6, 4))
    batch = summarize_batch(a, z)
    for i in range(6):
        one = summarize_matrix(a[i].tolist(), z[i].tolist())
        for key, values in batch.items():
            assert values[i] == pytest.approx(one[key]), key


def test_the_jackknife_interval_of_acc_is_the_stratified_t_interval() -> None:
    # ACC is the mean of the final row, a stratified mean of per-task scores: its jackknife
    # variance is sum_h s_h^2 / m_h / H^2, and the interval uses t on (tasks - chunks) df.
    rng = np.random.default_rng(9)
    sizes = [5, 6, 4]
    final = [rng.integers(0, 4, size=m) / 3 for m in sizes]
    chunks = []
    for j, m in enumerate(sizes):
        stage = [[float(v) for v in rng.random(m)] if j <= i + 1 else [None] * m for i in range(len(sizes))]
        stage[-1] = [float(v) for v in final[j]]
        chunks.append(ChunkScores(stage=stage, zero=[0.0] * m))
    point, ivs = interval_samples(chunks, resamples=10, methods=("jackknife",))
    acc = np.mean([f.mean() for f in final])
    var = sum(f.var(ddof=1) / len(f) for f in final) / len(sizes) ** 2
    half = sps.t.ppf(0.975, sum(sizes) - len(sizes)) * np.sqrt(var)
    assert point["acc"] == pytest.approx(acc)
    assert ivs["jackknife"]["acc"] == pytest.approx((acc - half, acc + half))


def test_intervals_are_offered_only_where_they_cover() -> None:
    assert set(interval_method([2, 2], 1).values()) == {None}
    wide = interval_method([12, 12, 12], 3)
    assert wide["acc"] == "jackknife" and wide["forward_transfer"] == "jackknife"


def test_the_readme_carries_the_json_reports_schema() -> None:
    import json
    from pathlib import Path

    from looper_engine.evaluation.report import report_schema

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- report-json-schema -->", 1)[1].split("<!-- /report-json-schema -->", 1)[0]
    text = block.strip().removeprefix("```json").removesuffix("```")
    assert json.loads(text) == report_schema()
