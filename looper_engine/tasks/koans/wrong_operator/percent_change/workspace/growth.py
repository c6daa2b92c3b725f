"""Week-over-week growth figures for the weekly KPI e-mail."""


def percent_change(old: int, new: int) -> float:
    """Relative change from `old` to `new` in percent, rounded to one decimal."""
    if old == 0:
        raise ValueError("no baseline: the old value is zero")
    return round((new - old) * 100 // old, 1)


def describe_change(name: str, old: int, new: int) -> str:
    change = percent_change(old, new)
    if change > 0:
        return f"{name} up {change}%"
    if change < 0:
        return f"{name} down {abs(change)}%"
    return f"{name} unchanged"


def weekly_summary(last_week: dict[str, int], this_week: dict[str, int]) -> list[str]:
    """One line per metric that has a baseline last week."""
    return [
        describe_change(name, last_week[name], this_week[name])
        for name in sorted(this_week)
        if last_week.get(name)
    ]
