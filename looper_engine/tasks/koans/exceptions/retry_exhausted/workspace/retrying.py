"""Retry flaky calls (network, lock contention) with exponential backoff."""

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def backoff_delays(attempts: int, base: float = 0.1, cap: float = 2.0) -> list[float]:
    """Delays between attempts: base, 2*base, 4*base, ... capped at `cap`."""
    return [min(cap, base * 2**i) for i in range(attempts - 1)]


def retry(
    fn: Callable[[], T],
    attempts: int = 3,
    retry_on: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError),
    base_delay: float = 0.1,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `fn` until it succeeds, at most `attempts` times.

    Only exceptions in `retry_on` are retried. When every attempt fails, the last
    error is raised to the caller.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    delays = backoff_delays(attempts, base_delay)
    for attempt in range(attempts):
        try:
            return fn()
        except retry_on:
            if attempt < len(delays):
                sleep(delays[attempt])
    return None
