from ttlcache import TTLCache


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_get_before_and_after_expiry():
    clock = FakeClock()
    cache = TTLCache(10, clock)
    cache.set("a", 1)
    assert cache.get("a") == 1
    clock.now += 10
    assert cache.get("a", "gone") == "gone"


def test_prune_nothing_expired():
    cache = TTLCache(10, FakeClock())
    cache.set("a", 1)
    assert cache.prune() == 0 and len(cache) == 1


def test_prune_expired_entries():
    clock = FakeClock()
    cache = TTLCache(10, clock)
    cache.set("old1", 1)
    cache.set("old2", 2)
    clock.now += 5
    cache.set("fresh", 3)
    clock.now += 6
    assert cache.prune() == 2
    assert len(cache) == 1 and cache.get("fresh") == 3
