import pytest

from looper_engine.events import EventBus
from looper_engine.store.db import Store
from looper_engine.store.writer import StoreWriter

KOAN = "off_by_one/date_range"


@pytest.fixture
async def recorded(tmp_path):
    """A bus with a store writer attached; yields (bus, store, writer)."""
    store = await Store.open(tmp_path / "looper.db")
    bus = EventBus()
    writer = StoreWriter(store, bus, linger_s=0).start()
    yield bus, store, writer
    await writer.close()
    await store.close()
