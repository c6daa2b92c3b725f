import asyncio

from forecast import forecasts, hottest

DATA = {
    "Oslo": {"summary": "rain", "high": 12},
    "Rome": {"summary": "sunny", "high": 27},
    "Lima": {"summary": "cloudy", "high": 19},
}


async def fetch(city):
    await asyncio.sleep(0)
    return DATA[city]


def test_hottest():
    assert asyncio.run(hottest(["Oslo", "Rome", "Lima"], fetch)) == "Rome"


def test_single_city():
    assert asyncio.run(forecasts(["Oslo"], fetch)) == ["Oslo: rain, 12°C"]


def test_order_is_kept():
    lines = asyncio.run(forecasts(["Rome", "Lima"], fetch))
    assert lines == ["Rome: sunny, 27°C", "Lima: cloudy, 19°C"]
