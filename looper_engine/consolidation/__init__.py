"""Consolidation: experience (chat rows) -> LoRA adapters, by one of several strategies.

Importing this package does not import mlx; training and merging import it when they run.
"""

from looper_engine.consolidation.adapter_files import (
    AdapterConfig,
    is_adapter_dir,
    new_adapter_id,
    read_adapter_config,
    verify_adapter_loads,
    write_adapter_atomically,
)
from looper_engine.consolidation.strategies import (
    STRATEGIES,
    Strategy,
    StrategyOutcome,
    StrategyPlan,
    get_strategy,
    merge_adapters,
    read_routes,
    route,
)
from looper_engine.consolidation.train import (
    CurvePoint,
    DataStats,
    TrainConfig,
    TrainHooks,
    TrainProgressInfo,
    TrainResult,
    clean_rows,
    data_stats,
    find_checkpoint,
    row_family,
    split_rows,
    train_adapter,
)

__all__ = [
    "STRATEGIES",
    "AdapterConfig",
    "CurvePoint",
    "DataStats",
    "Strategy",
    "StrategyOutcome",
    "StrategyPlan",
    "TrainConfig",
    "TrainHooks",
    "TrainProgressInfo",
    "TrainResult",
    "clean_rows",
    "data_stats",
    "find_checkpoint",
    "get_strategy",
    "is_adapter_dir",
    "merge_adapters",
    "new_adapter_id",
    "read_adapter_config",
    "read_routes",
    "route",
    "row_family",
    "split_rows",
    "train_adapter",
    "verify_adapter_loads",
    "write_adapter_atomically",
]
