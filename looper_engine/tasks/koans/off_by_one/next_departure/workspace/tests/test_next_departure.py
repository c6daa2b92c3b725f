from timetable import minutes_until_next, next_departure

TIMETABLE = ["08:00", "12:30", "17:45"]


def test_before_first_departure():
    assert minutes_until_next(TIMETABLE, "07:50") == 10


def test_between_departures():
    assert minutes_until_next(TIMETABLE, "12:00") == 30


def test_exactly_at_departure():
    assert minutes_until_next(TIMETABLE, "17:45") == 0


def test_after_last_departure():
    assert minutes_until_next(TIMETABLE, "18:20") is None


def test_search_over_many_departures():
    departures = list(range(0, 1440, 15))
    assert next_departure(departures, 61) == 75
    assert next_departure(departures, 1425) == 1425
    assert next_departure(departures, 1426) is None
    assert next_departure([], 5) is None
