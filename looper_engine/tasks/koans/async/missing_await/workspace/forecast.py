"""Forecasts for several cities from the (injected) weather service client."""

import asyncio
from typing import Awaitable, Callable

Fetch = Callable[[str], Awaitable[dict]]


async def forecast(city: str, fetch: Fetch) -> str:
    data = fetch(city)
    return f"{city}: {data['summary']}, {data['high']}°C"


async def forecasts(cities: list[str], fetch: Fetch) -> list[str]:
    """One line per city, in the order given; the cities are fetched concurrently."""
    return list(await asyncio.gather(*(forecast(city, fetch) for city in cities)))


async def hottest(cities: list[str], fetch: Fetch) -> str:
    highs = await asyncio.gather(*(fetch(city) for city in cities))
    return max(zip(cities, highs), key=lambda pair: pair[1]["high"])[0]
