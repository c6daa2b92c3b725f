"""Daily totals for the sales report."""

from datetime import date
from itertools import groupby
from typing import NamedTuple


class Sale(NamedTuple):
    day: date
    till: str
    amount: float


def daily_totals(sales: list[Sale]) -> dict[date, float]:
    """The sum of amounts per day. Sales come from several tills, in no particular order."""
    totals = {}
    for day, group in groupby(sales, key=lambda sale: sale.day):
        totals[day] = round(sum(sale.amount for sale in group), 2)
    return totals


def best_day(sales: list[Sale]) -> tuple[date, float]:
    totals = daily_totals(sales)
    return max(totals.items(), key=lambda item: item[1])
