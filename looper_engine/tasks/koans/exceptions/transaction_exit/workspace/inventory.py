"""A small unit of work for the in-memory inventory: changes apply only on success."""


class Inventory:
    def __init__(self, stock: dict[str, int]) -> None:
        self.stock = dict(stock)

    def transaction(self) -> "Transaction":
        return Transaction(self)


class Transaction:
    """Stage changes; commit them when the block succeeds, drop them when it raises."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.pending: dict[str, int] = {}

    def available(self, sku: str) -> int:
        return self.inventory.stock.get(sku, 0) + self.pending.get(sku, 0)

    def remove(self, sku: str, qty: int) -> None:
        if qty > self.available(sku):
            raise ValueError(f"only {self.available(sku)} of {sku} left")
        self.pending[sku] = self.pending.get(sku, 0) - qty

    def add(self, sku: str, qty: int) -> None:
        self.pending[sku] = self.pending.get(sku, 0) + qty

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            for sku, delta in self.pending.items():
                self.inventory.stock[sku] = self.inventory.stock.get(sku, 0) + delta
        self.pending.clear()
        return True
