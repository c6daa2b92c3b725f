import pytest

from leapyear import billing_days, days_in_month, days_in_year, is_leap_year


def test_ordinary_years():
    assert not is_leap_year(2023)
    assert days_in_year(2023) == 365


def test_every_fourth_year():
    assert is_leap_year(2024)
    assert days_in_month(2024, 2) == 29


def test_centuries():
    assert not is_leap_year(1900)
    assert is_leap_year(2000)


def test_billing_days():
    assert billing_days(2024, [1, 2, 3]) == 31 + 29 + 31


def test_invalid_month():
    with pytest.raises(ValueError):
        days_in_month(2024, 13)
