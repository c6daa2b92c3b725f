"""Price quotes from several suppliers; suppliers that answer too slowly are skipped."""

import asyncio
from typing import Awaitable, Callable

GetQuote = Callable[[str], Awaitable[float]]


async def quote_or_none(supplier: str, get_quote: GetQuote, timeout: float) -> float | None:
    try:
        return await asyncio.wait_for(get_quote(supplier), timeout)
    except asyncio.CancelledError:
        return None


async def best_quote(
    suppliers: list[str], get_quote: GetQuote, timeout: float = 2.0
) -> tuple[str, float] | None:
    """The cheapest quote among the suppliers that answer within `timeout` seconds."""
    quotes = await asyncio.gather(*(quote_or_none(s, get_quote, timeout) for s in suppliers))
    answered = [(price, supplier) for supplier, price in zip(suppliers, quotes) if price is not None]
    if not answered:
        return None
    price, supplier = min(answered)
    return supplier, price
