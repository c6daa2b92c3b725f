"""A fixed-size buffer of recent log lines for the status panel."""


class RingBuffer:
    """Keeps the last `capacity` items appended; older ones are dropped."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._items: list = [None] * capacity
        self._next = 0
        self._size = 0

    def append(self, item) -> None:
        self._items[self._next] = item
        self._next = (self._next + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)

    def __len__(self) -> int:
        return self._size

    def to_list(self) -> list:
        """Items from oldest to newest."""
        start = (self._next - self._size) % self.capacity
        return [self._items[(start + i) % self.capacity] for i in range(self._size)]

    def latest(self, n: int) -> list:
        """The newest `n` items, oldest first."""
        if n < 0:
            raise ValueError("n must not be negative")
        return self.to_list()[-n:]
