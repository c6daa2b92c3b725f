"""Sequential invoice numbers: INV-2024-0001, INV-2024-0002, ..."""

_last_number = 0
_year = None


def next_invoice_number(year: int) -> str:
    """The next number in `year`; numbering restarts at 1 each year."""
    if year != _year:
        _year = year
        _last_number = 0
    _last_number += 1
    return f"INV-{year}-{_last_number:04d}"


def issued_count() -> int:
    """How many numbers were issued in the current year."""
    return _last_number
