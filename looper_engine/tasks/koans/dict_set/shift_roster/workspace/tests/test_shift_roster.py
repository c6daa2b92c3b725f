import pytest

from roster import WEEKDAYS, build_roster, empty_roster, understaffed


def test_empty_roster():
    assert empty_roster() == {day: [] for day in WEEKDAYS}


def test_people_only_on_their_days():
    roster = build_roster({"ana": ["mon"], "bo": ["fri", "mon"]})
    assert roster == {"mon": ["ana", "bo"], "tue": [], "wed": [], "thu": [], "fri": ["bo"]}


def test_understaffed():
    roster = build_roster({"ana": ["mon", "tue"], "bo": ["mon"], "cy": ["tue", "wed"]})
    assert understaffed(roster) == ["wed", "thu", "fri"]


def test_unknown_day():
    with pytest.raises(ValueError):
        build_roster({"ana": ["sun"]})
