"""Themes as files, chosen by --theme or the command palette and remembered; bad theme
and settings files are reported, never fatal."""

import json

import pytest
from tui_helpers import make_app, wait_until

from looper_tui.screens.home import HomeScreen
from looper_tui.settings import Settings, config_dir, load_settings, save_settings
from looper_tui.themes import SHIPPED_THEMES_DIR, ThemeFile, load_theme_file, load_themes


def test_the_shipped_themes_are_a_dark_and_a_light_one():
    themes, problems = load_themes([SHIPPED_THEMES_DIR])
    assert problems == []
    by_name = {t.name: t for t in themes}
    assert by_name["looper-dark"].dark is True
    assert by_name["looper-light"].dark is False
    assert "looper-tag" in by_name["looper-dark"].variables


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('name = "x"\nprimary = "not-a-colour"\n', "primary: not a colour"),
        ('name = "x"\n', "primary: Field required"),
        ("name = [unclosed\n", "not valid TOML"),
        ('name = "x"\nprimary = "#fff"\nsurprise = 1\n', "surprise: Extra inputs"),
    ],
)
def test_a_bad_theme_file_gets_a_one_line_reason(tmp_path, text, reason):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as caught:
        load_theme_file(path)
    assert reason in str(caught.value) and "\n" not in str(caught.value)


def test_a_minimal_theme_file_is_enough(tmp_path):
    (tmp_path / "mine.toml").write_text('name = "mine"\nprimary = "#884400"\n')
    themes, problems = load_themes([tmp_path])
    assert problems == [] and [t.name for t in themes] == ["mine"]
    assert ThemeFile(name="mine", primary="#884400").to_theme().primary == "#884400"


def test_the_config_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPER_CONFIG_DIR", str(tmp_path / "a"))
    assert config_dir() == tmp_path / "a"
    monkeypatch.delenv("LOOPER_CONFIG_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_dir() == tmp_path / "xdg" / "looper"


def test_settings_survive_a_round_trip_and_a_corrupt_file_is_reported(tmp_path):
    assert save_settings(Settings(theme="looper-light"), tmp_path) is None
    assert load_settings(tmp_path) == (Settings(theme="looper-light"), None)
    (tmp_path / "settings.json").write_text("{broken")
    settings, problem = load_settings(tmp_path)
    assert settings == Settings() and problem is not None and "using defaults" in problem


async def test_the_mini_lab_takes_its_settings_from_the_file_and_saving_keeps_only_what_was_set(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "settings.json").write_text('{"minilab": {"teach_strategy": "naive", "per_family": 2}}')
    app = make_app(tmp_path, theme="looper-light")
    assert (app.minilab.teach_strategy, app.minilab.per_family) == ("naive", 2)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
    saved = json.loads((config / "settings.json").read_text())
    # the theme chosen is remembered, the mini-lab's own settings kept, no default written
    assert saved == {"theme": "looper-light", "minilab": {"teach_strategy": "naive", "per_family": 2}}


async def test_the_theme_flag_is_used_and_remembered(tmp_path):
    app = make_app(tmp_path, theme="looper-light")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
        assert app.theme == "looper-light" and not app.current_theme.dark
    saved = json.loads((tmp_path / "config" / "settings.json").read_text())
    assert saved["theme"] == "looper-light"
    again = make_app(tmp_path)
    async with again.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(again.screen, HomeScreen))
        assert again.theme == "looper-light"


async def test_a_theme_chosen_in_the_command_palette_is_remembered(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
        assert app.theme == "looper-dark"
        await pilot.press("ctrl+p")
        await pilot.press(*"Theme: looper-light")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.theme == "looper-light")
        await pilot.pause()
    assert load_settings(tmp_path / "config")[0].theme == "looper-light"


async def test_a_bad_theme_file_is_one_notification_and_the_lab_opens(tmp_path):
    themes = tmp_path / "config" / "themes"
    themes.mkdir(parents=True)
    (themes / "broken.toml").write_text('name = "broken"\nprimary = "nope"\n')
    (themes / "fine.toml").write_text('name = "fine"\nprimary = "#336699"\n')
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
        notes = [n.message for n in app._notifications]
        assert len(notes) == 1 and "broken.toml" in notes[0] and "primary" in notes[0]
        assert "fine" in app.available_themes and app.theme == "looper-dark"


async def test_an_unknown_theme_name_falls_back_with_a_notice(tmp_path):
    app = make_app(tmp_path, theme="no-such-theme")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
        assert app.theme == "looper-dark"
        assert any("unknown theme 'no-such-theme'" in n.message for n in app._notifications)


async def test_a_theme_file_can_be_given_by_path(tmp_path):
    path = tmp_path / "sunset.toml"
    path.write_text('name = "sunset"\ndark = true\nprimary = "#FF7F50"\n')
    app = make_app(tmp_path, theme=str(path))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
        assert app.theme == "sunset"
