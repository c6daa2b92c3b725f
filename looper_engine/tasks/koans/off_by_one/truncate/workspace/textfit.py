"""Fit text into the fixed-width columns of the terminal UI."""

ELLIPSIS = "…"


def truncate(text: str, width: int, ellipsis: str = ELLIPSIS) -> str:
    """Shorten `text` to at most `width` characters, marking the cut with `ellipsis`."""
    if width < len(ellipsis):
        raise ValueError("width is smaller than the ellipsis")
    if len(text) <= width:
        return text
    return text[: width - len(ellipsis) + 1] + ellipsis


def fit_columns(row: list[str], widths: list[int]) -> str:
    """Render a row as fixed-width cells separated by two spaces."""
    if len(row) != len(widths):
        raise ValueError("row and widths differ in length")
    cells = [truncate(cell, width).ljust(width) for cell, width in zip(row, widths)]
    return "  ".join(cells).rstrip()
