from coupons import Coupon, apply_coupon


def test_no_coupon():
    assert apply_coupon(19.999, None) == 20.0


def test_percentage():
    assert apply_coupon(80.0, Coupon("SAVE25", percent_off=25)) == 60.0


def test_fixed_amount():
    assert apply_coupon(25.0, Coupon("TENOFF", amount_off=10)) == 15.0


def test_never_negative():
    assert apply_coupon(5.0, Coupon("TENOFF", amount_off=10)) == 0.0


def test_both_discounts():
    assert apply_coupon(100.0, Coupon("COMBO", percent_off=10, amount_off=5)) == 85.0


def test_minimum_total():
    assert apply_coupon(30.0, Coupon("BIG", amount_off=10, min_total=50)) == 30.0
