"""Check that every configured health endpoint answers."""

import asyncio
from typing import Awaitable, Callable

Probe = Callable[[str], Awaitable[bool]]


async def check(url: str, probe: Probe, timeout: float = 1.0) -> tuple[str, bool]:
    try:
        healthy = await asyncio.wait_for(probe(url), timeout)
    except (asyncio.TimeoutError, OSError):
        healthy = False
    return url, healthy


async def check_all(urls: list[str], probe: Probe) -> dict[str, bool]:
    """Probe all endpoints concurrently: url -> healthy."""
    results = await asyncio.gather([check(url, probe) for url in urls])
    return dict(results)


def unhealthy(results: dict[str, bool]) -> list[str]:
    return sorted(url for url, healthy in results.items() if not healthy)
