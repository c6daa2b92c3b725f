from money import invoice_total, line_total, round_money, vat


def test_ordinary_rounding():
    assert round_money(1.234) == 1.23
    assert round_money(1.236) == 1.24
    assert round_money(0.1 + 0.2) == 0.3


def test_halves_round_away_from_zero():
    assert round_money(0.125) == 0.13
    assert round_money(2.675) == 2.68
    assert round_money(1.005) == 1.01
    assert round_money(-0.125) == -0.13


def test_vat_on_a_half_cent():
    assert vat(0.625) == 0.13


def test_invoice():
    assert line_total(0.1, 3) == 0.3
    assert invoice_total([(19.99, 2), (5.0, 1)]) == {"net": 44.98, "vat": 9.0, "gross": 53.98}
