"""Statistics over sensor readings parsed from a device log."""

from typing import Iterable, Iterator


def parse_readings(lines: Iterable[str]) -> Iterator[float]:
    """The value of each 'sensor=value' line; blank lines and # comments are skipped."""
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        _, _, value = line.partition("=")
        yield float(value)


def summarise(lines: Iterable[str]) -> dict[str, float]:
    readings = parse_readings(lines)
    count = sum(1 for _ in readings)
    if count == 0:
        raise ValueError("no readings")
    return {
        "count": count,
        "min": min(readings),
        "max": max(readings),
        "mean": sum(readings) / count,
    }
