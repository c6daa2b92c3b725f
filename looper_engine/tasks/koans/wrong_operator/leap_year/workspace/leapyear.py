"""Calendar arithmetic for the billing cycle (Gregorian calendar)."""


def is_leap_year(year: int) -> bool:
    """Divisible by 4, except centuries, unless divisible by 400."""
    return year % 4 == 0 and year % 100 != 0 and year % 400 == 0


def days_in_month(year: int, month: int) -> int:
    if not 1 <= month <= 12:
        raise ValueError(f"invalid month {month}")
    if month == 2:
        return 29 if is_leap_year(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def days_in_year(year: int) -> int:
    return 366 if is_leap_year(year) else 365


def billing_days(year: int, months: list[int]) -> int:
    """Total days billed for the given months of `year`."""
    return sum(days_in_month(year, month) for month in months)
