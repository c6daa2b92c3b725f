"""Smoothing for the dashboard's sparkline charts."""


def moving_average(values: list[float], window: int) -> list[float]:
    """Mean of each run of `window` consecutive values."""
    if window < 1:
        raise ValueError("window must be at least 1")
    if window > len(values):
        return []
    total = sum(values[:window])
    averages = [total / window]
    for i in range(window, len(values) - 1):
        total += values[i] - values[i - window]
        averages.append(total / window)
    return averages


def smooth_series(points: dict[str, float], window: int) -> dict[str, float]:
    """Moving average keyed by the label of the last point in each window."""
    labels = list(points)
    averages = moving_average(list(points.values()), window)
    return dict(zip(labels[window - 1 :], averages))
