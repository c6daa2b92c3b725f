"""Shipping fees for the checkout page."""

FREE_SHIPPING_FROM = 50.00

# (heaviest parcel in kg, fee)
WEIGHT_TIERS = [
    (1.0, 4.90),
    (5.0, 7.90),
    (20.0, 14.90),
]


def shipping_fee(subtotal: float, weight_kg: float) -> float:
    """Orders of FREE_SHIPPING_FROM or more ship free; others pay their weight tier's fee."""
    if weight_kg <= 0:
        raise ValueError("weight must be positive")
    if subtotal > FREE_SHIPPING_FROM:
        return 0.0
    for max_weight, fee in WEIGHT_TIERS:
        if weight_kg <= max_weight:
            return fee
    raise ValueError(f"{weight_kg} kg is over the {WEIGHT_TIERS[-1][0]} kg limit")


def order_total(subtotal: float, weight_kg: float) -> float:
    return round(subtotal + shipping_fee(subtotal, weight_kg), 2)
