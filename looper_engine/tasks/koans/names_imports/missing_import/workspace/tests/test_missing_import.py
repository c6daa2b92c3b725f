import pytest

from batching import batch_count, batches, describe_plan


def test_batch_count():
    assert batch_count(25, 10) == 3
    assert batch_count(20, 10) == 2
    assert batch_count(0, 10) == 0


def test_batches():
    assert list(batches(list(range(7)), 3)) == [[0, 1, 2], [3, 4, 5], [6]]


def test_describe_plan():
    assert describe_plan(25, 10) == "25 recipients in 3 batches of up to 10"
    assert describe_plan(5, 10) == "5 recipients in 1 batch of up to 10"


def test_bad_size():
    with pytest.raises(ValueError):
        batch_count(5, 0)
