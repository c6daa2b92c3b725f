"""The SQLite store: runs, episodes, steps, events, scores, adapters."""

from looper_engine.store.db import DEFAULT_DB, Store
from looper_engine.store.writer import StoreWriter

__all__ = ["DEFAULT_DB", "Store", "StoreWriter"]
