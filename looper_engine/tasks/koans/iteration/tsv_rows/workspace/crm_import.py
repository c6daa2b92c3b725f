"""Parse the tab-separated export of the old CRM into records."""


def parse_tsv(text: str) -> list[dict[str, str]]:
    """One dict per data row, keyed by the header row's column names. Blank lines are skipped."""
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        return []
    _, header = lines[0]
    columns = header.split("\t")
    if len(set(columns)) != len(columns):
        raise ValueError("duplicate column names in the header")
    records = []
    for number, line in lines[1:]:
        cells = line.split("\t")
        records.append(dict(zip(columns, cells)))
    return records


def column(records: list[dict[str, str]], name: str) -> list[str]:
    return [record[name] for record in records]
