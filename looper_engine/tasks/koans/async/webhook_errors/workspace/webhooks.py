"""Send webhook notifications to all subscribers concurrently."""

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable

Post = Callable[[str, dict], Awaitable[int]]


@dataclass
class Delivery:
    url: str
    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


async def deliver(url: str, payload: dict, post: Post) -> Delivery:
    status = await post(url, payload)
    return Delivery(url, status)


async def notify_all(urls: list[str], payload: dict, post: Post) -> list[Delivery]:
    """One Delivery per url, in order. A failing subscriber never stops the others."""
    return list(await asyncio.gather(*(deliver(url, payload, post) for url in urls), return_exceptions=True))


def failed(deliveries: list[Delivery]) -> list[str]:
    return [delivery.url for delivery in deliveries if not delivery.ok]
