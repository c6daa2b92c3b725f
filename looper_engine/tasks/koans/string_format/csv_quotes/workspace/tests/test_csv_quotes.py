import csv
import io

from csvout import escape_field, export


def read_back(text):
    return list(csv.reader(io.StringIO(text, newline="")))


def test_plain_fields():
    assert export(["name", "price"], [["pizza", 9.5]]) == "name,price\r\npizza,9.5\r\n"


def test_commas_and_newlines():
    rows = [["Smith, John", "line one\nline two"]]
    assert read_back(export(["name", "note"], rows))[1] == rows[0]


def test_embedded_quotes():
    rows = [['12" pizza', "9.5"], ['say "hi"', ""]]
    assert read_back(export(["name", "price"], rows))[1:] == rows


def test_none_is_empty():
    assert escape_field(None) == ""
