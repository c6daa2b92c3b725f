import pytest

from durations import format_duration, parse_duration


def test_long_durations():
    assert format_duration(3725) == "1:02:05"
    assert format_duration(36000) == "10:00:00"


def test_short_durations():
    assert format_duration(59.6) == "0:01:00"
    assert format_duration(0) == "0:00:00"


def test_round_trip():
    for seconds in (0, 7, 61, 3599, 3600, 86399):
        assert parse_duration(format_duration(seconds)) == seconds


def test_negative():
    with pytest.raises(ValueError):
        format_duration(-1)
