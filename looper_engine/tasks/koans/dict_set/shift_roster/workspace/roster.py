"""The per-weekday shift roster of the support team."""

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def empty_roster() -> dict[str, list[str]]:
    return dict.fromkeys(WEEKDAYS, [])


def build_roster(availability: dict[str, list[str]]) -> dict[str, list[str]]:
    """availability: person -> the weekdays they can work. Returns weekday -> people, sorted."""
    roster = empty_roster()
    for person, days in availability.items():
        for day in days:
            if day not in roster:
                raise ValueError(f"{person}: unknown weekday {day!r}")
            roster[day].append(person)
    return {day: sorted(people) for day, people in roster.items()}


def understaffed(roster: dict[str, list[str]], minimum: int = 2) -> list[str]:
    return [day for day in WEEKDAYS if len(roster[day]) < minimum]
