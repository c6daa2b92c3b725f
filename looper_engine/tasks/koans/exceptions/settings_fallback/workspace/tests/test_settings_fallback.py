import json

import pytest

from settings import DEFAULTS, load_settings, save_settings


def test_saved_settings_override_defaults(tmp_path):
    path = tmp_path / "settings.json"
    save_settings(path, {**DEFAULTS, "theme": "light"})
    assert load_settings(path) == {**DEFAULTS, "theme": "light"}
    assert json.loads(path.read_text()) == {"theme": "light"}


def test_first_run_uses_defaults(tmp_path):
    assert load_settings(tmp_path / "settings.json") == DEFAULTS


def test_defaults_are_not_shared(tmp_path):
    settings = load_settings(tmp_path / "missing" / "settings.json")
    settings["theme"] = "light"
    assert DEFAULTS["theme"] == "dark"


def test_not_an_object(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError):
        load_settings(path)
