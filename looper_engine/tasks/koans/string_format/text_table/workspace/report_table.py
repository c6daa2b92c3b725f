"""Plain-text tables for the CLI's `list` commands."""


def format_row(values: list[str], widths: list[int]) -> str:
    return "  ".join(value.ljust(width) for value, width in zip(values, widths)).rstrip()


def render_table(headers: list[str], rows: list[list[object]]) -> str:
    """Left-aligned columns as wide as their widest cell, two spaces apart, with a dashed
    rule under the header."""
    cells = [[str(value) for value in row] for row in rows]
    for row in cells:
        if len(row) != len(headers):
            raise ValueError(f"row {row!r} has {len(row)} cells, expected {len(headers)}")
    widths = [len(header) for header in headers]
    lines = [format_row(headers, widths), format_row(["-" * width for width in widths], widths)]
    lines += [format_row(row, widths) for row in cells]
    return "\n".join(lines)
