import pytest

from permissions import EXECUTE, READ, WRITE, format_mode, has_permission, parse_mode, revoke


def test_parse_and_format_round_trip():
    for text in ("---", "r--", "rw-", "r-x", "rwx"):
        assert format_mode(parse_mode(text)) == text


def test_single_permission():
    mode = parse_mode("r-x")
    assert has_permission(mode, READ)
    assert has_permission(mode, EXECUTE)
    assert not has_permission(mode, WRITE)


def test_combined_permission_needs_every_bit():
    assert has_permission(parse_mode("rw-"), READ | WRITE)
    assert not has_permission(parse_mode("r--"), READ | WRITE)


def test_revoke():
    assert format_mode(revoke(parse_mode("rwx"), WRITE | EXECUTE)) == "r--"


def test_bad_mode():
    with pytest.raises(ValueError):
        parse_mode("rwz")
