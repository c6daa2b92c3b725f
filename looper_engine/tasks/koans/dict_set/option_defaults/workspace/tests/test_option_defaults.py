import pytest

from http_options import DEFAULTS, client_options, describe


def test_empty_config_gives_defaults():
    assert client_options({}) == DEFAULTS


def test_values_are_taken():
    options = client_options({"timeout": 5, "proxy": "http://proxy:3128"})
    assert options["timeout"] == 5 and options["proxy"] == "http://proxy:3128"


def test_falsy_values_are_kept():
    options = client_options({"retries": 0, "verify_tls": False, "timeout": None})
    assert describe(options) == "timeout none, 0 retries, TLS verification off"


def test_unknown_option():
    with pytest.raises(ValueError, match="colour"):
        client_options({"colour": "blue"})
