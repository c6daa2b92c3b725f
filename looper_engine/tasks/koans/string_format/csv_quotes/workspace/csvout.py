"""Write report rows as CSV (RFC 4180) for the streaming export, one line at a time."""

SEPARATOR = ","


def escape_field(value: object) -> str:
    """Quote a field that contains the separator, a quote or a line break."""
    text = "" if value is None else str(value)
    if any(char in text for char in (SEPARATOR, '"', "\n", "\r")):
        return '"' + text + '"'
    return text


def to_csv_line(values: list[object]) -> str:
    return SEPARATOR.join(escape_field(value) for value in values) + "\r\n"


def export(headers: list[str], rows: list[list[object]]) -> str:
    return "".join(to_csv_line(row) for row in [headers, *rows])
