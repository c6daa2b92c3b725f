import pytest

from report_table import render_table


def test_headers_wider_than_cells():
    assert render_table(["name", "qty"], [["fig", 3]]) == "name  qty\n----  ---\nfig   3"


def test_cells_wider_than_headers():
    table = render_table(["name", "qty"], [["apple", 3], ["kiwi", 12]])
    assert table.splitlines() == [
        "name   qty",
        "-----  ---",
        "apple  3",
        "kiwi   12",
    ]


def test_columns_line_up():
    lines = render_table(["id", "owner", "state"], [[1, "alexandria", "open"], [22, "bo", "closed"]]).splitlines()
    starts = {line.index(word) for line, word in zip(lines[2:], ["open", "closed"])}
    assert len(starts) == 1


def test_wrong_number_of_cells():
    with pytest.raises(ValueError):
        render_table(["a", "b"], [[1]])
