import pytest

from growth import describe_change, percent_change, weekly_summary


def test_whole_percentages():
    assert percent_change(100, 150) == 50
    assert percent_change(80, 60) == -25


def test_fractional_growth():
    assert percent_change(3, 4) == 33.3


def test_small_drop():
    assert percent_change(200, 199) == -0.5
    assert describe_change("visits", 200, 199) == "visits down 0.5%"


def test_unchanged():
    assert describe_change("orders", 12, 12) == "orders unchanged"


def test_summary_skips_new_metrics():
    assert weekly_summary({"a": 10}, {"a": 11, "b": 5}) == ["a up 10.0%"]


def test_zero_baseline():
    with pytest.raises(ValueError):
        percent_change(0, 5)
