import pytest

from crm_import import column, parse_tsv


def test_parse():
    records = parse_tsv("name\temail\nAna\tana@example.org\n\nBo\tbo@example.org\n")
    assert records == [
        {"name": "Ana", "email": "ana@example.org"},
        {"name": "Bo", "email": "bo@example.org"},
    ]
    assert column(records, "name") == ["Ana", "Bo"]


def test_empty_input():
    assert parse_tsv("") == []


def test_missing_cell_is_rejected():
    with pytest.raises(ValueError, match="line 3"):
        parse_tsv("name\temail\tphone\nAna\tana@example.org\t555\nBo\tbo@example.org\n")


def test_extra_cell_is_rejected():
    with pytest.raises(ValueError, match="line 2"):
        parse_tsv("name\temail\nAna\tana@example.org\tVIP\n")


def test_duplicate_columns():
    with pytest.raises(ValueError):
        parse_tsv("name\tname\nAna\tAnna\n")
