"""Split a restaurant bill between friends, to the cent."""


def split_bill(total: float, people: int) -> list[float]:
    """Shares that differ by at most one cent and add up exactly to `total`."""
    if people < 1:
        raise ValueError("need at least one person")
    if total < 0:
        raise ValueError("the total cannot be negative")
    share = round(total / people, 2)
    shares = [share] * people
    shares[-1] = round(total - share * (people - 1), 2)
    return shares


def with_tip(total: float, percent: float) -> float:
    return round(total * (1 + percent / 100), 2)
