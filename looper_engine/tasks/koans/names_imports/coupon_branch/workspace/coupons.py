"""Apply coupon codes at checkout."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Coupon:
    code: str
    percent_off: int = 0
    amount_off: float = 0.0
    min_total: float = 0.0


def apply_coupon(total: float, coupon: Coupon | None) -> float:
    """The total after the coupon, never below zero. A coupon below its minimum is ignored;
    a coupon with both kinds of discount takes the percentage first."""
    if coupon is None or total < coupon.min_total:
        return round(total, 2)
    discounted = total
    if coupon.percent_off:
        discounted = total * (100 - coupon.percent_off) / 100
    if coupon.amount_off:
        discounted = discount - coupon.amount_off
    return round(max(discounted, 0.0), 2)
