"""Account balances updated by concurrent payment handlers."""

import asyncio


class Ledger:
    def __init__(self) -> None:
        self._balances: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def _load(self, account: str) -> int:
        await asyncio.sleep(0)  # the production ledger reads from the database here
        return self._balances.get(account, 0)

    async def _store(self, account: str, balance: int) -> None:
        await asyncio.sleep(0)
        self._balances[account] = balance

    async def deposit(self, account: str, cents: int) -> int:
        if cents <= 0:
            raise ValueError("a deposit must be positive")
        balance = await self._load(account)
        await self._store(account, balance + cents)
        return balance + cents

    async def withdraw(self, account: str, cents: int) -> int:
        async with self._lock:
            balance = await self._load(account)
            if cents > balance:
                raise ValueError("insufficient funds")
            await self._store(account, balance - cents)
            return balance - cents

    def balance(self, account: str) -> int:
        return self._balances.get(account, 0)
