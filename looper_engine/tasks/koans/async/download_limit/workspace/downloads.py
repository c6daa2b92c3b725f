"""Download many files with a bounded number of transfers in flight (the CDN throttles us)."""

import asyncio
from typing import Awaitable, Callable

Download = Callable[[str], Awaitable[bytes]]


async def download_all(urls: list[str], download: Download, limit: int = 4) -> dict[str, bytes]:
    """url -> content, with at most `limit` downloads running at any moment."""
    if limit < 1:
        raise ValueError("limit must be at least 1")

    async def one(url: str) -> tuple[str, bytes]:
        semaphore = asyncio.Semaphore(limit)
        async with semaphore:
            return url, await download(url)

    pairs = await asyncio.gather(*(one(url) for url in urls))
    return dict(pairs)


def total_bytes(contents: dict[str, bytes]) -> int:
    return sum(len(data) for data in contents.values())
