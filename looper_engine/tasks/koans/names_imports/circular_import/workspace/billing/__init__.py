"""Billing: invoices and the tax rates they use."""

from billing.invoice import Invoice, Line

TAX_RATES = {"standard": 0.20, "reduced": 0.05, "zero": 0.0}

__all__ = ["Invoice", "Line", "TAX_RATES"]
