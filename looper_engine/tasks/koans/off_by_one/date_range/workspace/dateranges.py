"""Date helpers for the booking report: inclusive ranges and per-day counts."""

from collections import Counter
from datetime import date, timedelta


def date_range(start: date, end: date) -> list[date]:
    """Every day from `start` to `end`, both included."""
    if end < start:
        raise ValueError("end is before start")
    days = (end - start).days
    return [start + timedelta(days=i) for i in range(days)]


def nights(check_in: date, check_out: date) -> int:
    """Nights stayed: the check-out day is not a night."""
    return len(date_range(check_in, check_out)) - 1


def bookings_per_day(bookings: list[tuple[date, date]]) -> dict[date, int]:
    """How many bookings cover each day, check-in through check-out."""
    counts: Counter[date] = Counter()
    for check_in, check_out in bookings:
        counts.update(date_range(check_in, check_out))
    return dict(sorted(counts.items()))
