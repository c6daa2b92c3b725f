import asyncio

import pytest

from ledger import Ledger


def test_sequential_deposits():
    async def scenario():
        ledger = Ledger()
        await ledger.deposit("acc", 500)
        await ledger.deposit("acc", 250)
        return ledger.balance("acc")

    assert asyncio.run(scenario()) == 750


def test_concurrent_deposits():
    async def scenario():
        ledger = Ledger()
        await asyncio.gather(*(ledger.deposit("acc", 1) for _ in range(100)))
        return ledger.balance("acc")

    assert asyncio.run(scenario()) == 100


def test_concurrent_deposits_and_withdrawals():
    async def scenario():
        ledger = Ledger()
        await ledger.deposit("acc", 1000)
        ops = [ledger.deposit("acc", 10) for _ in range(20)] + [ledger.withdraw("acc", 5) for _ in range(20)]
        await asyncio.gather(*ops)
        return ledger.balance("acc")

    assert asyncio.run(scenario()) == 1000 + 200 - 100


def test_overdraw():
    async def scenario():
        ledger = Ledger()
        await ledger.withdraw("acc", 1)

    with pytest.raises(ValueError):
        asyncio.run(scenario())
