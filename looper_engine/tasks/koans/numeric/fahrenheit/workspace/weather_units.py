"""Unit conversions for the weather station display."""


def fahrenheit_to_celsius(fahrenheit: float) -> float:
    return round(fahrenheit - 32 * 5 / 9, 1)


def celsius_to_fahrenheit(celsius: float) -> float:
    return round(celsius * 9 / 5 + 32, 1)


def kmh_to_knots(kmh: float) -> float:
    return round(kmh / 1.852, 1)


def display(reading: dict[str, float], unit: str = "C") -> str:
    """'21.5 °C, wind 10.8 kn' from a reading in °F and km/h."""
    if unit not in ("C", "F"):
        raise ValueError(f"unknown unit {unit!r}")
    temperature = reading["temp_f"] if unit == "F" else fahrenheit_to_celsius(reading["temp_f"])
    return f"{temperature} °{unit}, wind {kmh_to_knots(reading['wind_kmh'])} kn"
