"""The regression gate of a night: the frozen set measured under the candidate and under the
arm as it was (the incumbent), compared task by task (exact one-sided McNemar)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from looper_engine.evaluation.cycle.context import Arm, CycleContext, Round
from looper_engine.evaluation.cycle.measure import measure_cells
from looper_engine.evaluation.cycle.plan import Item
from looper_engine.evaluation.cycle.state import ArmState
from looper_engine.evaluation.experiment import GateSpec
from looper_engine.evaluation.metrics import regression_gate
from looper_engine.store.experiments import CellRow


@dataclass(frozen=True)
class Verdict:
    """Whether the night's candidate is adopted, why, and the verdict as the night records it."""

    adopted: bool
    reason: str
    record: dict[str, Any]


def nothing_to_adopt(skipped: str) -> Verdict:
    """The verdict on a night that produced no candidate."""
    reason = f"nothing to adopt: {skipped}"
    return Verdict(adopted=False, reason=reason, record={"adopted": False, "reason": reason, "n": 0})


def adopted_unmeasured() -> Verdict:
    """The verdict of a gate that is off and not measured: adopted, nothing run."""
    reason = "adopted (gate off, not measured)"
    return Verdict(adopted=True, reason=reason, record={"adopted": True, "enabled": False, "reason": reason, "n": 0})


def judge(
    gate: GateSpec, frozen: list[Item], incumbent: dict[str, CellRow], candidate: dict[str, CellRow]
) -> Verdict:
    """The gate's verdict on the candidate's cells against the incumbent's. With the gate off
    the candidate is adopted and the record says what the gate would have said."""
    base = {t: [incumbent[t].resolved] for _, t in frozen}
    new = {t: [candidate[t].resolved] for _, t in frozen}
    result = regression_gate(base, new, alpha=gate.alpha)
    adopted = result.adopted or not gate.enabled
    record = result.model_dump()
    record["enabled"] = gate.enabled
    record["frozen_tasks"] = len(frozen)
    if not gate.enabled:
        record["reason"] = "adopted (gate off); the gate would have said: " + result.reason
    record["adopted"] = adopted
    return Verdict(adopted=adopted, reason=record["reason"], record=record)


async def run_gate(
    ctx: CycleContext, arm: Arm, seed: int, cycle: int, frozen: list[Item], candidate: ArmState, incumbent: ArmState
) -> Verdict:
    """Measure the frozen set under both states (the candidate's first) and judge."""
    cand_cells = await measure_cells(ctx, Round(arm, seed, cycle, "candidate"), frozen, candidate)
    inc_cells = await measure_cells(ctx, Round(arm, seed, cycle, "incumbent"), frozen, incumbent)
    return judge(ctx.spec.gate, frozen, inc_cells, cand_cells)


__all__ = ["Verdict", "adopted_unmeasured", "judge", "nothing_to_adopt", "run_gate"]
