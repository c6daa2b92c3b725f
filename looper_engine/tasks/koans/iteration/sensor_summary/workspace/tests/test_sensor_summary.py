import pytest

from sensors import parse_readings, summarise


def test_parse_skips_comments_and_blanks():
    assert list(parse_readings(["# header", "", "t=1.5", " t=2 "])) == [1.5, 2.0]


def test_summary():
    assert summarise(["t=1.5", "t=2.5"]) == {"count": 2, "min": 1.5, "max": 2.5, "mean": 2.0}


def test_summary_from_a_file_like_iterator():
    lines = iter(["# device 7", "t=4", "t=-2", "t=10"])
    assert summarise(lines) == {"count": 3, "min": -2.0, "max": 10.0, "mean": 4.0}


def test_no_readings():
    with pytest.raises(ValueError, match="no readings"):
        summarise(["# nothing yet"])
