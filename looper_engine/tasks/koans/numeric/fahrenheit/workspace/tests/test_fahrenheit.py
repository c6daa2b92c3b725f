import pytest

from weather_units import celsius_to_fahrenheit, display, fahrenheit_to_celsius


def test_fixed_points():
    assert fahrenheit_to_celsius(212) == 100.0
    assert fahrenheit_to_celsius(32) == 0.0
    assert fahrenheit_to_celsius(-40) == -40.0


def test_round_trip():
    for celsius in (-12.5, 0.0, 21.5, 37.0):
        assert fahrenheit_to_celsius(celsius_to_fahrenheit(celsius)) == celsius


def test_display():
    assert display({"temp_f": 70.7, "wind_kmh": 20}) == "21.5 °C, wind 10.8 kn"
    assert display({"temp_f": 70.7, "wind_kmh": 20}, "F") == "70.7 °F, wind 10.8 kn"


def test_unknown_unit():
    with pytest.raises(ValueError):
        display({"temp_f": 1, "wind_kmh": 1}, "K")
