"""Planning: which (chunk, task) cells each step of the cycle visits, and how many units the
whole run has (for progress). Pure functions of the experiment plan."""

from __future__ import annotations

from typing import NamedTuple

from looper_engine.evaluation.experiment import ExperimentPlan

HELDOUT = -1
"""The chunk number of a held-out cell."""


class Item(NamedTuple):
    """One cell to measure: its chunk (HELDOUT for the held-out set) and task."""

    chunk: int
    task_id: str


def zero_shot_items(plan: ExperimentPlan) -> list[Item]:
    """The base model's zero-shot pass: every chunk, then the held-out set."""
    items = [Item(j, t) for j in range(plan.n_chunks) for t in plan.chunks[j]]
    return items + [Item(HELDOUT, t) for t in plan.heldout]


def day_items(plan: ExperimentPlan, cycle: int) -> list[Item]:
    """The day of `cycle`: the tasks of its chunk."""
    return [Item(cycle, t) for t in plan.chunks[cycle]]


def eval_items(plan: ExperimentPlan, cycle: int) -> list[Item]:
    """The evaluation after `cycle`: chunks 0..cycle+1 (the last one at most), then held-out."""
    last = min(cycle + 1, plan.n_chunks - 1)
    items = [Item(j, t) for j in range(last + 1) for t in plan.chunks[j]]
    return items + [Item(HELDOUT, t) for t in plan.heldout]


def frozen_items(plan: ExperimentPlan, cycle: int) -> list[Item]:
    """The gate's frozen set after `cycle`: every task learned so far (up to `gate.max_tasks`)."""
    frozen = [Item(j, t) for j in range(cycle + 1) for t in plan.chunks[j]]
    if plan.spec.gate.max_tasks is not None:
        frozen = frozen[: plan.spec.gate.max_tasks]
    return frozen


def gate_units(plan: ExperimentPlan, cycle: int) -> int:
    """The units planned for the gate of `cycle`'s night: each seen task, under both states."""
    return 2 * sum(len(c) for c in plan.chunks[: cycle + 1])


def planned_units(plan: ExperimentPlan) -> int:
    """Every cell the run visits, for the progress total."""
    spec = plan.spec
    n = plan.n_chunks
    sizes = [len(c) for c in plan.chunks]
    held = len(plan.heldout)
    per_seed = sum(sizes) + held
    for arm in spec.arms:
        for i in range(n):
            evals = sum(sizes[: min(i + 2, n)]) + held
            if arm.learns:
                seen = sum(sizes[: i + 1])
                teacher = sizes[i] if arm.teacher else 0
                per_seed += sizes[i] + teacher + 2 * seen + evals
            else:
                per_seed += evals
    return per_seed * len(spec.seeds)


def task_positions(plan: ExperimentPlan) -> dict[str, int]:
    """Each task's place in the stream, to order cells as they were run."""
    return {t: i for i, t in enumerate(t for chunk in plan.chunks for t in chunk)}


__all__ = [
    "HELDOUT",
    "Item",
    "day_items",
    "eval_items",
    "frozen_items",
    "gate_units",
    "planned_units",
    "task_positions",
    "zero_shot_items",
]
