import asyncio

from quotes import best_quote

PRICES = {"acme": 12.5, "globex": 9.99, "initech": 11.0}


async def get_quote(supplier):
    if supplier not in PRICES:
        await asyncio.Event().wait()
    await asyncio.sleep(0)
    return PRICES[supplier]


def test_cheapest():
    assert asyncio.run(best_quote(["acme", "globex", "initech"], get_quote)) == ("globex", 9.99)


def test_slow_supplier_is_skipped():
    result = asyncio.run(best_quote(["acme", "hung-corp", "initech"], get_quote, timeout=0.01))
    assert result == ("initech", 11.0)


def test_nobody_answers():
    assert asyncio.run(best_quote(["hung-corp"], get_quote, timeout=0.01)) is None
