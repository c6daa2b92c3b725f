"""Invoice arithmetic: line totals and VAT, rounded to cents as the accountants expect."""

VAT_RATE = 0.20


def round_money(amount: float) -> float:
    """Round to cents; halves go away from zero (0.125 -> 0.13, -0.125 -> -0.13)."""
    return round(amount, 2)


def line_total(unit_price: float, quantity: int) -> float:
    return round_money(unit_price * quantity)


def vat(net: float, rate: float = VAT_RATE) -> float:
    return round_money(net * rate)


def invoice_total(lines: list[tuple[float, int]]) -> dict[str, float]:
    net = round_money(sum(line_total(price, qty) for price, qty in lines))
    tax = vat(net)
    return {"net": net, "vat": tax, "gross": round_money(net + tax)}
