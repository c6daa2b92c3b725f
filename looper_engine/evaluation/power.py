"""Power before spending compute: simulate an experiment's design and read off what its
comparisons can and cannot detect.

Every comparison the report makes (each arm against the zero-shot reference, on the stream and
on the held-out set) is simulated with the design's own numbers: its tasks, the seeds each side
runs, and whether a side repeats itself across seeds (a model at temperature 0 that learns
nothing gives every seed the same outcome; an arm that learns is an independent learning line
per seed). Each simulated experiment draws every task's success probability p from
Beta(0.6, 0.9) (mean 0.4, most tasks easy or hard, as agent tasks are); the arm succeeds with
p + s(1 - p), s chosen so the mean difference over the population of tasks is exactly the effect
D (for a decrease, p(1 - s)). The test is the one the report uses, `paired_comparison`'s exact
sign-flip test, at its two-sided alpha. Common random numbers across effects make the power
curve monotone, so the smallest detectable effect is found by bisection.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from looper_engine.errors import UserError
from looper_engine.evaluation.clstats import TASK_PRIOR
from looper_engine.evaluation.stats import design_label, sign_flip_pvalues

SIMS = 2000
POWER_SIMS = 800


class ComparisonDesign(BaseModel):
    """One comparison the report will make, as the simulation sees it."""

    arm: str
    scope: str
    n_tasks: int
    base_seeds: int
    arm_seeds: int
    base_repeats: bool = Field(description="every seed of the base gives the same outcome")
    arm_repeats: bool = Field(description="every seed of the arm gives the same outcome")

    @property
    def key(self) -> tuple[int, int, int, bool, bool]:
        return (self.n_tasks, self.base_seeds, self.arm_seeds, self.base_repeats, self.arm_repeats)

    @property
    def label(self) -> str:
        return design_label(self.n_tasks, [self.arm_seeds])


class ComparisonPower(BaseModel):
    arm: str
    scope: str
    design: str
    n_tasks: int
    base_seeds: int
    arm_seeds: int
    false_positive_rate: float
    min_detectable: float | None = Field(description="smallest increase detected with the target power")
    power_at_effect: float | None = None


class DesignPower(BaseModel):
    alpha: float
    power: float
    effect: float | None = None
    sims: int
    task_prior: tuple[float, float] = TASK_PRIOR
    comparisons: list[ComparisonPower] = Field(default_factory=list)

    def cannot_detect(self) -> list[ComparisonPower]:
        """The comparisons whose power at `effect` is below the target."""
        if self.effect is None:
            return []
        return [c for c in self.comparisons if c.power_at_effect is None or c.power_at_effect < self.power]


def _temperature(spec: dict[str, Any], arm: dict[str, Any] | None) -> float:
    t = float(spec.get("limits", {}).get("temperature", 0.0))
    t = float(spec.get("agent", {}).get("temperature", t))
    if arm is not None:
        t = float(arm.get("config", {}).get("temperature", t))
    return t


def _learns(arm: dict[str, Any]) -> bool:
    from looper_engine.evaluation.experiment import LAYERS

    return any(part.strip() in LAYERS for part in str(arm.get("kind", "base")).split("+"))


def comparison_designs(spec: Any, n_stream: int, n_heldout: int) -> list[ComparisonDesign]:
    """The comparisons of an experiment (an ExperimentSpec, or its stored dict) with `n_stream`
    stream and `n_heldout` held-out tasks: each arm against the zero-shot reference on both."""
    data: dict[str, Any] = spec if isinstance(spec, dict) else spec.model_dump(mode="json")
    k = len(data.get("seeds", [0]))
    base_repeats = k > 1 and _temperature(data, None) == 0.0
    out = []
    for arm in data.get("arms", []):
        repeats = k > 1 and not _learns(arm) and _temperature(data, arm) == 0.0
        for scope, n in (("stream", n_stream), ("held-out", n_heldout)):
            if n:
                out.append(ComparisonDesign(arm=arm["name"], scope=scope, n_tasks=n, base_seeds=k, arm_seeds=k,
                                            base_repeats=base_repeats, arm_repeats=repeats))
    return out


def _shifted(p: np.ndarray, effect: float) -> np.ndarray:
    a, b = TASK_PRIOR
    pbar = a / (a + b)
    if effect >= 0:
        return p + effect / (1 - pbar) * (1 - p)
    return p * (1 + effect / pbar)


def max_effect() -> float:
    """The largest increase the simulation's task population leaves room for."""
    a, b = TASK_PRIOR
    return b / (a + b)


class _Draws:
    """The random numbers of `sims` simulated experiments of one comparison, shared by every effect."""

    def __init__(self, d: ComparisonDesign, sims: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.d = d
        self.p = rng.beta(*TASK_PRIOR, size=(sims, d.n_tasks))
        ub = rng.random((sims, d.n_tasks, 1 if d.base_repeats else d.base_seeds))
        self.base = (ub < self.p[..., None]).sum(axis=2) * (d.base_seeds if d.base_repeats else 1)
        self.ua = rng.random((sims, d.n_tasks, 1 if d.arm_repeats else d.arm_seeds))

    def pvalues(self, effect: float) -> tuple[np.ndarray, np.ndarray]:
        """Two-sided p and the observed mean difference of every simulated experiment."""
        d = self.d
        q = _shifted(self.p, effect)
        arm = (self.ua < q[..., None]).sum(axis=2) * (d.arm_seeds if d.arm_repeats else 1)
        ints = arm * d.base_seeds - self.base * d.arm_seeds  # per-task differences on the lattice
        return sign_flip_pvalues(ints), ints.mean(axis=1)


def _bisect(power_at: Any, top: float, power: float) -> float | None:
    """The smallest effect in (0, top] whose power reaches `power` (the curve is monotone under
    common random numbers): a coarse scan for the bracket, then bisection to 1/256 of `top`."""
    grid = [top * i / 6 for i in range(1, 7)]
    prev = 0.0
    for e in grid:
        if power_at(e) >= power:
            lo, hi = prev, e
            for _ in range(5):
                mid = (lo + hi) / 2
                if power_at(mid) >= power:
                    hi = mid
                else:
                    lo = mid
            return hi
        prev = e
    return None


@lru_cache(maxsize=256)
def simulated_min_detectable(n_tasks: int, base_seeds: int, arm_seeds: int, base_repeats: bool,
                             arm_repeats: bool, *, alpha: float = 0.05, power: float = 0.8,
                             worse: bool = False, sims: int = POWER_SIMS, seed: int = 1) -> float | None:
    """The smallest increase (or with `worse` decrease) of the mean success rate that the exact
    two-sided sign-flip test detects with probability `power`, by simulation; None if none."""
    d = ComparisonDesign(arm="", scope="", n_tasks=n_tasks, base_seeds=base_seeds, arm_seeds=arm_seeds,
                         base_repeats=base_repeats and base_seeds > 1, arm_repeats=arm_repeats and arm_seeds > 1)
    draws = _Draws(d, sims, seed)
    sign = -1.0 if worse else 1.0

    def power_at(e: float) -> float:
        ps, diff = draws.pvalues(sign * e)
        return float(np.mean((ps < alpha) & (diff * sign > 0)))

    return _bisect(power_at, (1 - max_effect()) if worse else max_effect(), power)


@lru_cache(maxsize=128)
def _simulate(key: tuple[int, int, int, bool, bool], alpha: float, power: float, effect: float | None,
              sims: int, power_sims: int, seed: int) -> tuple[float, float | None, float | None]:
    n, kb, ka, rb, ra = key
    d = ComparisonDesign(arm="", scope="", n_tasks=n, base_seeds=kb, arm_seeds=ka, base_repeats=rb, arm_repeats=ra)
    null_p, _ = _Draws(d, sims, seed).pvalues(0.0)
    fpr = float(np.mean(null_p < alpha))
    mde = simulated_min_detectable(n, kb, ka, rb, ra, alpha=alpha, power=power, sims=power_sims, seed=seed + 1)
    at: float | None = None
    if effect is not None:
        ps, diff = _Draws(d, power_sims, seed + 1).pvalues(effect)
        at = float(np.mean((ps < alpha) & (diff * np.sign(effect) > 0)))
    return fpr, mde, at


def design_power(
    designs: list[ComparisonDesign],
    *,
    effect: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    sims: int = SIMS,
    power_sims: int = POWER_SIMS,
    seed: int = 0,
) -> DesignPower:
    """False-positive rate, the smallest increase detected with `power`, and the power at
    `effect`, for each comparison. Comparisons of the same shape are simulated once."""
    if effect is not None and not (-1.0 < effect < 1.0) or effect == 0:
        raise UserError(f"--effect must be a difference in success rate between -1 and 1 (not 0), got {effect}")
    if effect is not None and effect > max_effect():
        raise UserError(
            f"--effect {effect} is larger than the room the simulated tasks leave (mean rate "
            f"{1 - max_effect():.2f}, so at most {max_effect():.2f})"
        )
    if effect is not None and effect < -(1 - max_effect()):
        raise UserError(f"--effect {effect} is a larger drop than the mean rate {1 - max_effect():.2f} allows")
    out = DesignPower(alpha=alpha, power=power, effect=effect, sims=sims)
    for d in designs:
        fpr, mde, at = _simulate(d.key, alpha, power, effect, sims, power_sims, seed)
        out.comparisons.append(
            ComparisonPower(arm=d.arm, scope=d.scope, design=d.label, n_tasks=d.n_tasks, base_seeds=d.base_seeds,
                            arm_seeds=d.arm_seeds, false_positive_rate=fpr, min_detectable=mde,
                            power_at_effect=at)
        )
    return out


def power_lines(power: DesignPower) -> list[str]:
    """One sentence per group of comparisons that detect the same: "On the stream (24 tasks x
    3 seeds) this design detects differences of 0.32 or more with 80% power (adapter, memory)"."""
    groups: dict[tuple[str, str, float | None], list[str]] = {}
    for c in power.comparisons:
        groups.setdefault((c.scope, c.design, c.min_detectable), []).append(c.arm)
    lines = []
    for (scope, design, mde), arms in groups.items():
        who = ", ".join(arms)
        if mde is None:
            lines.append(f"On the {scope} ({design}) this design cannot detect any difference with "
                         f"{power.power:.0%} power ({who}).")
        else:
            lines.append(f"On the {scope} ({design}) this design detects differences of {mde:.2f} or more "
                         f"with {power.power:.0%} power ({who}).")
    return lines


__all__ = [
    "ComparisonDesign",
    "ComparisonPower",
    "DesignPower",
    "TASK_PRIOR",
    "comparison_designs",
    "design_power",
    "max_effect",
    "power_lines",
    "simulated_min_detectable",
]
