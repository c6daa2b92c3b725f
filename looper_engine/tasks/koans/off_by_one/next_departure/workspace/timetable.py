"""Departure board lookups over a day's timetable (minutes since midnight)."""


def parse_hhmm(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def next_departure(departures: list[int], now: int) -> int | None:
    """The first departure at or after `now`, or None when the last one has left.

    `departures` is sorted ascending. This runs for every stop on every refresh,
    hence the binary search.
    """
    lo, hi = 0, len(departures) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if departures[mid] < now:
            lo = mid + 1
        else:
            hi = mid
    if lo < len(departures):
        return departures[lo]
    return None


def minutes_until_next(timetable: list[str], now: str) -> int | None:
    departures = sorted(parse_hhmm(entry) for entry in timetable)
    current = parse_hhmm(now)
    found = next_departure(departures, current)
    return None if found is None else found - current
