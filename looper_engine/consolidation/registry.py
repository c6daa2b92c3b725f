"""The adapter registry: one row per adapter in the store, its files under adapters/<id>/."""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel, Field

from looper_engine.store.db import Store, rollback


class AdapterRecord(BaseModel):
    id: str
    parent_id: str | None = None
    strategy: str
    base_model: str
    data_hash: str = ""
    data_stats: dict[str, Any] = Field(default_factory=dict)
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    curve: list[dict[str, Any]] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
    path: str
    status: str = "ready"
    created_at: float = Field(default_factory=time.time)


_JSON = ("data_stats", "hyperparams", "curve", "metrics")


async def register_adapter(store: Store, record: AdapterRecord) -> None:
    """One transaction: the row appears whole or not at all."""
    data = record.model_dump()
    for k in _JSON:
        data[k] = json.dumps(data[k])
    cols = list(data)
    async with store.tx_lock:
        try:
            # inside the try: a BEGIN cancelled while it waits for the lock still runs
            await store.db.execute("BEGIN IMMEDIATE")
            await store.db.execute(
                f"INSERT INTO adapters({', '.join(cols)}) VALUES({', '.join('?' * len(cols))})",
                tuple(data[c] for c in cols),
            )
            await store.db.execute("COMMIT")
        except BaseException:
            await rollback(store.db)
            raise


def _record(row: dict[str, Any]) -> AdapterRecord:
    for k in _JSON:
        row[k] = json.loads(row[k])
    return AdapterRecord(**row)


async def list_adapters(store: Store) -> list[AdapterRecord]:
    return [_record(dict(r)) for r in await store.rows("SELECT * FROM adapters ORDER BY created_at DESC")]


async def get_adapter(store: Store, adapter_id: str) -> AdapterRecord | None:
    rows = await store.rows("SELECT * FROM adapters WHERE id=?", (adapter_id,))
    return _record(dict(rows[0])) if rows else None
