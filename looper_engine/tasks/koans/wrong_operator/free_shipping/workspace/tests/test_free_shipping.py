import pytest

from shipping import order_total, shipping_fee


def test_weight_tiers():
    assert shipping_fee(10.0, 0.5) == 4.90
    assert shipping_fee(10.0, 1.0) == 4.90
    assert shipping_fee(10.0, 3.2) == 7.90


def test_free_from_threshold():
    assert shipping_fee(50.00, 2.0) == 0.0
    assert order_total(50.00, 2.0) == 50.00


def test_just_below_threshold_pays():
    assert shipping_fee(49.99, 2.0) == 7.90


def test_big_orders_ship_free():
    assert shipping_fee(120.0, 12.0) == 0.0


def test_too_heavy():
    with pytest.raises(ValueError):
        shipping_fee(10.0, 25.0)
