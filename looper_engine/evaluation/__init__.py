"""Experiments and their measurement: continual-learning metrics, episode metrics, the
regression gate, and the statistics behind every reported interval."""

from looper_engine.evaluation.metrics import (
    EpisodeOutcome,
    GateVerdict,
    Measure,
    summarize_matrix,
)
from looper_engine.evaluation.stats import (
    PairedComparison,
    Rate,
    TaskRate,
    min_detectable_effect,
    paired_comparison,
    rate,
    task_rate,
    wilson_interval,
)

__all__ = [
    "EpisodeOutcome",
    "GateVerdict",
    "Measure",
    "PairedComparison",
    "Rate",
    "TaskRate",
    "min_detectable_effect",
    "paired_comparison",
    "rate",
    "task_rate",
    "summarize_matrix",
    "wilson_interval",
]
