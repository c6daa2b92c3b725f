"""Shared builders for the consolidation tests."""

from __future__ import annotations

from typing import Any

import mlx.core as mx

from looper_engine.consolidation.adapter_files import AdapterConfig, LoraParameters
from looper_engine.consolidation.train import row_family


def family_rows(rows: list[dict[str, Any]], *families: str) -> list[dict[str, Any]]:
    return [r for r in rows if row_family(r) in families]


def lora_weights(seed: int, rank: int = 4, layers: int = 2) -> dict[str, mx.array]:
    """LoRA tensors for the tiny model's q_proj only (128 -> 128)."""
    key = mx.random.key(seed)
    out = {}
    for i in range(layers):
        ka, kb, key = mx.random.split(key, 3)
        out[f"model.layers.{i}.self_attn.q_proj.lora_a"] = mx.random.normal((128, rank), key=ka)
        out[f"model.layers.{i}.self_attn.q_proj.lora_b"] = mx.random.normal((rank, 128), key=kb)
    return out


def lora_config(rank: int = 4, scale: float = 2.0) -> AdapterConfig:
    return AdapterConfig(
        num_layers=2,
        lora_parameters=LoraParameters(rank=rank, scale=scale, keys=["self_attn.q_proj"]),
    )
