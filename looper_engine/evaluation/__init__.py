"""Experiments and their measurement: continual-learning metrics, episode metrics, the
regression gate, and the statistics behind every reported interval."""

from looper_engine.evaluation.metrics import (
    EpisodeOutcome,
    GateVerdict,
    Measure,
    summarize_matrix,
)
from looper_engine.evaluation.stats import (
    McNemarResult,
    Rate,
    bootstrap_diff_interval,
    mcnemar_exact,
    min_detectable_difference,
    rate,
    wilson_interval,
)

__all__ = [
    "EpisodeOutcome",
    "GateVerdict",
    "McNemarResult",
    "Measure",
    "Rate",
    "bootstrap_diff_interval",
    "mcnemar_exact",
    "min_detectable_difference",
    "rate",
    "summarize_matrix",
    "wilson_interval",
]
