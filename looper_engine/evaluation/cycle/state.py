"""What an arm has learned so far, and the hashes that identify the conditions it runs under."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, Field

from looper_engine.config import AgentConfig
from looper_engine.evaluation.skills import MemoryEntry


class ArmState(BaseModel):
    """What an arm has learned so far: the conditions its next episodes run under."""

    adapter: str | None = None
    adapter_hash: str = ""
    routes: dict[str, str] = Field(default_factory=dict)
    route_hashes: dict[str, str] = Field(default_factory=dict)
    adapters: list[str] = Field(default_factory=list, description="adopted adapters, oldest first")
    rules: list[str] = Field(default_factory=list)
    rules_how: str = ""
    memory: list[MemoryEntry] = Field(default_factory=list)
    version: int = 0

    def adapter_for(self, family: str) -> tuple[str | None, str]:
        if self.routes:
            from looper_engine.consolidation.strategies import DEFAULT_FAMILY

            if family in self.routes:
                return self.routes[family], self.route_hashes.get(family, "")
            if DEFAULT_FAMILY in self.routes:
                return self.routes[DEFAULT_FAMILY], self.route_hashes.get(DEFAULT_FAMILY, "")
            return None, ""
        return self.adapter, self.adapter_hash


def adapter_hash(folder: str | Path) -> str:
    """Content hash of an adapter folder's weights and config: the same training gives the
    same hash, so a retrained adapter matches measurements of the one it replaces."""
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapters.safetensors"):
        path = Path(folder) / name
        if name == "adapter_config.json":
            # The config records absolute paths and timestamps; only the LoRA shape matters.
            cfg = json.loads(path.read_text())
            data = json.dumps(
                {k: cfg.get(k) for k in ("fine_tune_type", "num_layers", "lora_parameters")}, sort_keys=True
            ).encode()
        else:
            data = path.read_bytes()
        digest.update(data)
    return digest.hexdigest()[:20]


def fingerprint(model: str, adapter: str, system_prompt: str, config: AgentConfig) -> str:
    data = json.dumps(
        {"model": model, "adapter": adapter, "prompt": system_prompt, "config": config.model_dump()},
        sort_keys=True,
    )
    return hashlib.sha256(data.encode()).hexdigest()[:24]


__all__ = ["ArmState", "adapter_hash", "fingerprint"]
