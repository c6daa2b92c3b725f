import pytest

from bill_split import split_bill, with_tip


def check(total, people):
    shares = split_bill(total, people)
    assert len(shares) == people
    assert round(sum(shares), 2) == total
    assert round(max(shares) - min(shares), 2) <= 0.01
    return shares


def test_even_split():
    assert check(90.0, 3) == [30.0, 30.0, 30.0]


def test_thirds():
    assert sorted(check(100.0, 3)) == [33.33, 33.33, 33.34]


def test_six_people():
    assert sorted(check(10.0, 6)) == [1.66, 1.66, 1.67, 1.67, 1.67, 1.67]


def test_many_totals():
    for cents in range(0, 2000, 37):
        for people in range(1, 9):
            check(cents / 100, people)


def test_tip():
    assert with_tip(40.0, 15) == 46.0


def test_nobody():
    with pytest.raises(ValueError):
        split_bill(10.0, 0)
