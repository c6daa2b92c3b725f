import pytest

from hostport import AddressError, parse_address


def test_host_and_port():
    assert parse_address("example.org:8000") == ("example.org", 8000)


def test_default_port():
    assert parse_address("example.org") == ("example.org", 8080)


def test_port_out_of_range():
    with pytest.raises(AddressError, match="out of range"):
        parse_address("example.org:70000")


def test_port_not_a_number():
    with pytest.raises(AddressError, match="not a number"):
        parse_address("localhost:http")


def test_missing_host():
    with pytest.raises(AddressError):
        parse_address(":80")
