from datetime import date

from sales import Sale, best_day, daily_totals

MON = date(2024, 4, 1)
TUE = date(2024, 4, 2)


def test_sorted_sales():
    sales = [Sale(MON, "a", 10.0), Sale(MON, "b", 7.0), Sale(TUE, "a", 5.0)]
    assert daily_totals(sales) == {MON: 17.0, TUE: 5.0}


def test_interleaved_tills():
    sales = [Sale(MON, "a", 10.0), Sale(TUE, "b", 5.0), Sale(MON, "b", 7.0)]
    assert daily_totals(sales) == {MON: 17.0, TUE: 5.0}


def test_best_day():
    sales = [Sale(TUE, "a", 12.0), Sale(MON, "a", 10.0), Sale(TUE, "b", 0.5), Sale(MON, "b", 7.0)]
    assert best_day(sales) == (MON, 17.0)


def test_no_sales():
    assert daily_totals([]) == {}
