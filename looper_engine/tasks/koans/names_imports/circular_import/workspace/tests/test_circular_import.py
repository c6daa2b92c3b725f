import pytest

from billing import TAX_RATES, Invoice


def test_rates():
    assert TAX_RATES["standard"] == 0.20


def test_standard_invoice():
    invoice = Invoice("2024-001")
    invoice.add("consulting", 100.00)
    assert invoice.gross_total == 120.00


def test_mixed_categories():
    invoice = Invoice("2024-002")
    invoice.add("book", 20.00, "reduced")
    invoice.add("course", 50.00)
    invoice.add("donation", 10.00, "zero")
    assert (invoice.net_total, invoice.tax_total, invoice.gross_total) == (80.00, 11.00, 91.00)


def test_unknown_category():
    invoice = Invoice("2024-003")
    invoice.add("mystery", 10.00, "luxury")
    with pytest.raises(ValueError):
        invoice.tax_total
