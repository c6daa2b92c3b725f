"""CL and episode metrics on small cases worked by hand."""

from __future__ import annotations

import math

import pytest
from scipy.stats import binomtest

from looper_engine.errors import UserError
from looper_engine.evaluation.metrics import (
    EpisodeOutcome,
    acc,
    aulc,
    backward_transfer,
    cl_f_beta,
    cl_plasticity,
    cl_stability,
    forgetting,
    forward_transfer,
    loop_alarms_per_episode,
    pass_at_k,
    regression_gate,
    repeat_error_rate,
    resolve_rate,
    smallest_testable_frozen_set,
    steps_to_resolve,
    summarize_matrix,
    tokens_to_resolve,
    tool_calls_per_resolve,
    tool_use_efficiency,
)
from looper_engine.evaluation.stats import wilson_interval
from looper_engine.events import EpisodeFinished

# Rows: after learning through chunk i; columns: chunk j. a[0][2] was never measured.
A = [
    [0.6, 0.3, None],
    [0.8, 0.7, 0.4],
    [0.5, 0.6, 0.9],
]
Z = [0.2, 0.1, 0.3]


def test_acc_is_the_mean_of_the_last_row() -> None:
    # ACC = (0.5 + 0.6 + 0.9) / 3 = 2.0 / 3
    assert acc(A) == pytest.approx(2.0 / 3)


def test_forgetting_is_best_earlier_score_minus_final() -> None:
    # chunk 0: max(a00=0.6, a10=0.8) - a20=0.5 = 0.3;  chunk 1: max(a11=0.7) - a21=0.6 = 0.1
    # F = (0.3 + 0.1) / 2 = 0.2
    assert forgetting(A) == pytest.approx(0.2)


def test_forgetting_uses_scores_measured_after_learning_not_before() -> None:
    # a[0][1] = 0.9 was measured before chunk 1 was learned, so it does not count as a
    # peak: F = ((0.8 - 0.6) + (0.5 - 0.5)) / 2 = 0.1
    a = [
        [0.8, 0.9, None],
        [0.7, 0.5, 0.2],
        [0.6, 0.5, 0.4],
    ]
    assert forgetting(a) == pytest.approx(0.1)


def test_forward_transfer_against_zero_shot() -> None:
    # (a01 - z1) = 0.3 - 0.1 = 0.2;  (a12 - z2) = 0.4 - 0.3 = 0.1;  FT = 0.3 / 2 = 0.15
    assert forward_transfer(A, Z) == pytest.approx(0.15)


def test_backward_transfer() -> None:
    # (a20 - a00) = 0.5 - 0.6 = -0.1;  (a21 - a11) = 0.6 - 0.7 = -0.1;  BWT = -0.2 / 2 = -0.1
    assert backward_transfer(A) == pytest.approx(-0.1)


def test_aulc_is_the_mean_running_mean_of_the_diagonal() -> None:
    # diagonal 0.6, 0.7, 0.9: running means 0.6, 0.65, 2.2/3; AULC = (0.6 + 0.65 + 0.7333..) / 3
    assert aulc(A) == pytest.approx((0.6 + 0.65 + 2.2 / 3) / 3)


def test_plasticity_stability_and_f_beta() -> None:
    # P = 2.2/3 = 11/15;  S = 1 - 0.2 = 4/5
    assert cl_plasticity(A) == pytest.approx(11 / 15)
    assert cl_stability(A) == pytest.approx(0.8)
    # F1 = 2 * (11/15) * (4/5) / (11/15 + 12/15) = (88/75) / (23/15) = 1320/1725
    assert cl_f_beta(A) == pytest.approx(1320 / 1725)
    # F2 = 5 * (44/75) / (4 * 11/15 + 12/15) = (220/75) / (56/15) = 3300/4200
    assert cl_f_beta(A, beta=2.0) == pytest.approx(3300 / 4200)


def test_summarize_matrix_reports_every_metric() -> None:
    s = summarize_matrix(A, Z)
    assert s["n_chunks"] == 3
    assert s["acc"] == pytest.approx(2.0 / 3)
    assert s["forgetting"] == pytest.approx(0.2)
    assert s["forward_transfer"] == pytest.approx(0.15)
    assert s["backward_transfer"] == pytest.approx(-0.1)
    assert s["cl_stability"] == pytest.approx(0.8)
    assert s["cl_f_beta"] == pytest.approx(1320 / 1725)
    assert summarize_matrix(A)["forward_transfer"] is None


def test_constant_matrix_has_no_forgetting_and_no_backward_transfer() -> None:
    a = [[0.7] * 4 for _ in range(4)]
    assert forgetting(a) == pytest.approx(0.0)
    assert backward_transfer(a) == pytest.approx(0.0)
    assert cl_stability(a) == pytest.approx(1.0)
    assert acc(a) == pytest.approx(0.7)


def test_forward_transfer_is_zero_when_next_chunk_scores_equal_zero_shot() -> None:
    a = [
        [0.5, 0.25, None, None],
        [0.5, 0.5, 0.75, None],
        [0.5, 0.5, 0.5, 0.0],
        [0.5, 0.5, 0.5, 0.5],
    ]
    assert forward_transfer(a, [0.9, 0.25, 0.75, 0.0]) == pytest.approx(0.0)


def test_identity_matrix_learns_each_chunk_then_forgets_it() -> None:
    n = 4
    a = [[1.0 if i == j else 0.0 for j in range(n)] for i in range(n)]
    # only the last chunk is solved at the end: ACC = 1/4; each earlier chunk fell 1 -> 0
    assert acc(a) == pytest.approx(1 / n)
    assert forgetting(a) == pytest.approx(1.0)
    assert backward_transfer(a) == pytest.approx(-1.0)
    assert cl_plasticity(a) == pytest.approx(1.0)
    assert cl_f_beta(a) == pytest.approx(0.0)


def test_single_chunk_metrics_that_need_two_are_none_in_the_summary() -> None:
    s = summarize_matrix([[0.4]], [0.1])
    assert s["acc"] == pytest.approx(0.4)
    assert s["forgetting"] is None and s["forward_transfer"] is None and s["cl_f_beta"] is None
    with pytest.raises(UserError, match="at least 2 chunks"):
        forgetting([[0.4]])


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ([], "empty"),
        ([[0.5, 0.5], [0.5]], "row 1 has 1"),
        ([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]], "must be 2x2"),
        ([[0.5, None], [0.5, 0.5]], r"a\[0\]\[1\]"),
        ([[0.5, 0.5], [1.5, 0.5]], r"a\[1\]\[0\] must be a rate"),
        ([[0.5, 0.5], [float("nan"), 0.5]], r"a\[1\]\[0\] must be a rate"),
    ],
)
def test_bad_matrices_are_user_errors(matrix: list[list[float | None]], message: str) -> None:
    with pytest.raises(UserError, match=message):
        summarize_matrix(matrix)


def test_zero_shot_rates_must_cover_every_chunk() -> None:
    with pytest.raises(UserError, match="one entry per chunk"):
        forward_transfer(A, [0.1, 0.2])


def test_tool_use_efficiency_is_a_ratio_of_medians() -> None:
    # median(success) = 20, median(all) = 30 -> 2/3
    assert tool_use_efficiency([10, 20, 30], [10, 20, 30, 100, 200]) == pytest.approx(2 / 3)
    assert tool_use_efficiency([], [10, 20]) is None
    with pytest.raises(UserError):
        tool_use_efficiency([1.0], [])


EPISODES = [
    EpisodeOutcome(resolved=True, steps=4, tokens=1000, tool_calls=3, loop_alarms=0),
    EpisodeOutcome(resolved=False, steps=30, tokens=9000, tool_calls=29, loop_alarms=3),
    EpisodeOutcome(resolved=True, steps=6, tokens=2000, tool_calls=5, loop_alarms=1),
    EpisodeOutcome(resolved=True, steps=11, tokens=3000, tool_calls=10, loop_alarms=0),
]


def test_resolve_rate_has_n_and_a_wilson_interval() -> None:
    r = resolve_rate(EPISODES)
    assert (r.k, r.n, r.rate) == (3, 4, 0.75)
    assert (r.lo, r.hi) == pytest.approx(wilson_interval(3, 4))
    empty = resolve_rate([])
    assert (empty.n, empty.rate, empty.lo, empty.hi) == (0, None, 0.0, 1.0)


def test_cost_measures_count_resolved_episodes_only() -> None:
    steps = steps_to_resolve(EPISODES)
    # resolved: 4, 6, 11 -> mean 7, median 6
    assert (steps.n, steps.mean, steps.median) == (3, 7.0, 6.0)
    assert steps.lo is not None and steps.hi is not None and 4 <= steps.lo <= 7 <= steps.hi <= 11
    assert tokens_to_resolve(EPISODES).mean == pytest.approx(2000.0)
    assert tool_calls_per_resolve(EPISODES).mean == pytest.approx(6.0)  # (3 + 5 + 10) / 3
    # over all four episodes: (0 + 3 + 1 + 0) / 4
    alarms = loop_alarms_per_episode(EPISODES)
    assert (alarms.n, alarms.mean) == (4, 1.0)
    assert steps_to_resolve([EPISODES[1]]).mean is None


def test_repeat_error_rate_counts_tasks_failing_again_the_same_way() -> None:
    attempts = [
        ("t1", 1, False, "E1"),  # given out of order: epochs decide
        ("t1", 0, False, "E1"),  # t1: E1 then E1 -> repeat
        ("t2", 0, False, "E1"),
        ("t2", 1, False, "E2"),  # t2: E1 then E2 -> eligible, no repeat
        ("t3", 0, False, "A"),
        ("t3", 1, True, ""),
        ("t3", 2, False, "A"),  # t3: same as its previous failure across a success -> repeat
        ("t4", 0, True, ""),
        ("t4", 1, False, "B"),  # t4: no failure before a later attempt -> not counted
        ("t5", 0, False, ""),
        ("t5", 1, False, ""),  # t5: unknown signatures never match -> eligible, no repeat
        ("t6", 0, False, "C"),  # t6: a single attempt -> not counted
    ]
    r = repeat_error_rate(attempts)
    # repeats {t1, t3} out of eligible {t1, t2, t3, t5}
    assert (r.k, r.n, r.rate) == (2, 4, 0.5)


def test_pass_at_k_unbiased_estimator() -> None:
    # k = 1 is the plain success rate: 1 - C(3,1)/C(5,1) = 1 - 3/5
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    # 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k(5, 4, 2) == 1.0  # fewer than k failures: some draw of k always passes
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(200, 13, 10) == pytest.approx(1 - math.comb(187, 10) / math.comb(200, 10))
    with pytest.raises(UserError):
        pass_at_k(5, 6, 1)
    with pytest.raises(UserError):
        pass_at_k(5, 2, 6)


def frozen(outcomes: list[bool]) -> dict[str, list[bool]]:
    return {f"t{i:02d}": [x] for i, x in enumerate(outcomes)}


def test_regression_gate_rejects_a_significantly_worse_candidate() -> None:
    base = [True] * 10 + [False] * 10
    candidate = [False] * 6 + [True] * 4 + [False] * 10
    v = regression_gate(frozen(base), frozen(candidate))
    # b = 6 lost, c = 0 gained: one-sided p = P(X >= 6 | Bin(6, 1/2)) = 1/64
    assert (v.b, v.c, v.n) == (6, 0, 20)
    assert v.p_value == pytest.approx(1 / 64)
    assert v.p_value == pytest.approx(binomtest(6, 6, 0.5, alternative="greater").pvalue)
    assert not v.adopted and "worse" in v.reason
    assert (v.base_rate, v.candidate_rate) == (0.5, 0.2)


def test_regression_gate_adopts_when_the_loss_is_not_significant() -> None:
    base = [True, True, True, False, True, False]
    candidate = [False, False, False, True, True, False]
    v = regression_gate(frozen(base), frozen(candidate))
    # b = 3, c = 1: P(X >= 3 | Bin(4, 1/2)) = (4 + 1) / 16
    assert (v.b, v.c) == (3, 1)
    assert v.p_value == pytest.approx(5 / 16)
    assert v.adopted and v.testable
    same = regression_gate(frozen(base), frozen(base))
    assert same.adopted and same.p_value == 1.0


def test_an_extreme_loss_keeps_its_true_p() -> None:
    # 30 frozen tasks, all lost: p = 2**-30, not 0 (an upper tail computed as 1 - lower tail
    # rounds to 0 in floating point).
    v = regression_gate(frozen([True] * 30), frozen([False] * 30))
    assert not v.adopted and v.p_value == 2.0**-30 and "p=9.31e-10" in v.reason


def test_a_gate_too_small_to_reject_says_it_tested_nothing() -> None:
    # 4 frozen tasks, all lost: p = 1/16 = 0.0625 >= 0.05. The gate cannot reject; the verdict
    # says so instead of calling it a pass.
    v = regression_gate(frozen([True] * 4), frozen([False] * 4))
    assert v.adopted and not v.testable and v.smallest_p == 0.0625
    assert v.reason.startswith("adopted untested: 4 frozen tasks cannot reach p < 0.05")
    assert smallest_testable_frozen_set(0.05) == 5 and smallest_testable_frozen_set(0.01) == 7
    assert regression_gate(frozen([True] * 5), frozen([False] * 5)).adopted is False


def test_regression_gate_needs_paired_outcomes() -> None:
    with pytest.raises(UserError, match="same tasks"):
        regression_gate(frozen([True, False]), frozen([True]))
    with pytest.raises(UserError):
        regression_gate({}, {})


def test_episode_outcome_reads_a_finished_event() -> None:
    finished = EpisodeFinished(
        status="resolved",
        resolved=True,
        reason="done",
        steps=5,
        prompt_tokens=100,
        completion_tokens=20,
        loop_alarms=1,
    )
    e = EpisodeOutcome.from_event(finished, tool_calls=4, task_id="koans/x")
    # tokens = prompt + completion = 100 + 20
    assert (e.resolved, e.steps, e.tokens, e.tool_calls, e.loop_alarms, e.task_id) == (
        True,
        5,
        120,
        4,
        1,
        "koans/x",
    )
