import pytest

from ringbuffer import RingBuffer


def filled(capacity, items):
    buffer = RingBuffer(capacity)
    for item in items:
        buffer.append(item)
    return buffer


def test_keeps_the_newest_items_in_order():
    buffer = filled(3, "abcde")
    assert buffer.to_list() == ["c", "d", "e"]
    assert len(buffer) == 3


def test_latest():
    assert filled(5, "abcdefg").latest(2) == ["f", "g"]


def test_latest_more_than_stored():
    assert filled(5, "ab").latest(4) == ["a", "b"]


def test_latest_zero_is_empty():
    assert filled(4, "abcdef").latest(0) == []


def test_negative_is_rejected():
    with pytest.raises(ValueError):
        filled(2, "a").latest(-1)
