import pytest

from smoothing import moving_average, smooth_series


def test_pairs():
    assert moving_average([1, 2, 3, 4, 5], 2) == [1.5, 2.5, 3.5, 4.5]


def test_window_of_one_is_identity():
    assert moving_average([4, 8, 15], 1) == [4, 8, 15]


def test_window_as_long_as_series():
    assert moving_average([2, 4, 6], 3) == [4]


def test_window_longer_than_series():
    assert moving_average([1, 2], 3) == []


def test_invalid_window():
    with pytest.raises(ValueError):
        moving_average([1, 2], 0)


def test_series_keeps_latest_label():
    series = smooth_series({"mon": 10, "tue": 20, "wed": 30, "thu": 50}, 2)
    assert series == {"tue": 15, "wed": 25, "thu": 40}
