import pytest

import invoices


@pytest.fixture(autouse=True)
def fresh_counter(monkeypatch):
    monkeypatch.setattr(invoices, "_last_number", 0)
    monkeypatch.setattr(invoices, "_year", None)


def test_sequence():
    assert invoices.next_invoice_number(2024) == "INV-2024-0001"
    assert invoices.next_invoice_number(2024) == "INV-2024-0002"
    assert invoices.issued_count() == 2


def test_new_year_restarts():
    invoices.next_invoice_number(2024)
    invoices.next_invoice_number(2024)
    assert invoices.next_invoice_number(2025) == "INV-2025-0001"
    assert invoices.issued_count() == 1


def test_nothing_issued():
    assert invoices.issued_count() == 0
