import pytest

from inventory import Inventory


def test_commit_on_success():
    inventory = Inventory({"apple": 5})
    with inventory.transaction() as tx:
        tx.remove("apple", 2)
        tx.add("pear", 3)
    assert inventory.stock == {"apple": 3, "pear": 3}


def test_overdraw_raises():
    inventory = Inventory({"apple": 5})
    with pytest.raises(ValueError, match="only 5 of apple left"):
        with inventory.transaction() as tx:
            tx.remove("apple", 99)


def test_rollback_on_error():
    inventory = Inventory({"apple": 5})
    with pytest.raises(RuntimeError):
        with inventory.transaction() as tx:
            tx.remove("apple", 1)
            raise RuntimeError("payment declined")
    assert inventory.stock == {"apple": 5}


def test_staged_changes_count_within_transaction():
    inventory = Inventory({"apple": 1})
    with inventory.transaction() as tx:
        tx.add("apple", 2)
        tx.remove("apple", 3)
    assert inventory.stock == {"apple": 0}
