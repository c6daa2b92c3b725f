from datetime import date

import pytest

from dateranges import bookings_per_day, date_range, nights


def test_range_includes_both_ends():
    assert date_range(date(2024, 3, 1), date(2024, 3, 3)) == [
        date(2024, 3, 1),
        date(2024, 3, 2),
        date(2024, 3, 3),
    ]


def test_single_day_range():
    assert date_range(date(2024, 1, 31), date(2024, 1, 31)) == [date(2024, 1, 31)]


def test_nights():
    assert nights(date(2024, 5, 10), date(2024, 5, 13)) == 3


def test_reversed_range_is_rejected():
    with pytest.raises(ValueError):
        date_range(date(2024, 3, 2), date(2024, 3, 1))


def test_bookings_per_day_counts_overlaps():
    counts = bookings_per_day([(date(2024, 6, 1), date(2024, 6, 2)), (date(2024, 6, 2), date(2024, 6, 3))])
    assert counts == {date(2024, 6, 1): 1, date(2024, 6, 2): 2, date(2024, 6, 3): 1}
