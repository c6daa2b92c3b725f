"""Screenshots of every screen, compared with the accepted ones in __snapshots__/.

Deterministic by construction: a fixed clock, a fixed terminal size, no cursor blink,
no animation, and (for the live view) the events of an episode in flight published on the
real bus, so that no real duration reaches the screen."""

import asyncio
from pathlib import Path

import pytest
from textual.widgets import TextArea
from tui_helpers import NOW, episode_events, make_app, publish, record_lab, wait_until

from looper_engine.agent.control import EpisodeControl
from looper_engine.chat import Message
from looper_engine.events import Paused
from looper_tui.screens.history import HistoryScreen


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    # Paths on screen are relative, so screenshots do not depend on where tmp_path is.
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def lab_db(tmp_path):
    ids = asyncio.run(record_lab(tmp_path / "lab.db"))
    return Path("lab.db"), ids


def app_for(tmp_path, db=None, **kwargs):
    app = make_app(tmp_path, db or Path("looper.db"), **kwargs)
    app.animation_level = "none"
    return app


# --- home ---------------------------------------------------------------------------


def test_home_empty_dark(tmp_path, snap_compare):
    assert snap_compare(app_for(tmp_path), terminal_size=(100, 30))


def test_home_empty_narrow(tmp_path, snap_compare):
    assert snap_compare(app_for(tmp_path), terminal_size=(80, 24))


@pytest.mark.parametrize("theme", ["looper-dark", "looper-light"])
def test_home_with_runs(tmp_path, snap_compare, lab_db, theme):
    db, _ = lab_db
    assert snap_compare(app_for(tmp_path, db, theme=theme), terminal_size=(110, 30))


def test_new_run_form(tmp_path, snap_compare):
    from looper_tui.screens.home import HomeScreen

    async def run_before(pilot):
        # over the loaded home (its welcome), as a person who presses n after the lab opened
        app = pilot.app
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen) and app.screen._data is not None)
        await pilot.press("n")

    assert snap_compare(app_for(tmp_path), run_before=run_before, terminal_size=(100, 36))


# --- live ---------------------------------------------------------------------------


async def _live(pilot, events, episode_ids=("ep-live",), control: EpisodeControl | None = None):
    app = pilot.app
    if control is not None:
        app.lab.controls[episode_ids[0]] = control
    publish(app.lab.bus, events)
    await pilot.pause()
    app.show_live(list(episode_ids), title="run run-demo")
    await pilot.pause(0.2)


def test_live_mid_episode_with_alarm(tmp_path, snap_compare):
    async def run_before(pilot):
        await _live(pilot, episode_events("ep-live"), control=EpisodeControl())

    assert snap_compare(app_for(tmp_path), run_before=run_before, terminal_size=(120, 36))


def test_live_mid_episode_narrow(tmp_path, snap_compare):
    async def run_before(pilot):
        await _live(pilot, episode_events("ep-live"), control=EpisodeControl())

    assert snap_compare(app_for(tmp_path), run_before=run_before, terminal_size=(80, 24))


def test_live_two_episodes(tmp_path, snap_compare):
    async def run_before(pilot):
        events = episode_events("ep-one", task_id="koans/off_by_one/date_range", alarm_at=None)
        events += episode_events("ep-two", task_id="koans/wrong_operator/leap_year", steps=2, streaming=None,
                                 finished="resolved", alarm_at=None)
        await _live(pilot, events, episode_ids=("ep-one", "ep-two"))
        await pilot.press("right_square_bracket")
        await pilot.pause(0.2)

    assert snap_compare(app_for(tmp_path), run_before=run_before, terminal_size=(120, 30))


def _paused_control(app, episode_id: str, step: int) -> EpisodeControl:
    """A control at a step boundary, paused, as the episode loop leaves it."""
    control = EpisodeControl(start_paused=True)
    history = [Message(role="user", content="Task: `add(1, 2)` returns -1; it should return 3.")]
    control.attach(lambda: ("You fix bugs in a small code repository.", history))
    control.on_pause = lambda s, reason: app.lab.bus.publish(Paused(episode_id=episode_id, step=s, reason=reason, ts=NOW))
    app.run_worker(control.checkpoint(step), group="test-control")
    return control


def test_live_paused(tmp_path, snap_compare):
    async def run_before(pilot):
        app = pilot.app
        control = _paused_control(app, "ep-live", 3)
        await _live(pilot, episode_events("ep-live", streaming=None), control=control)
        await pilot.pause(0.2)

    assert snap_compare(app_for(tmp_path), run_before=run_before, terminal_size=(120, 36))


def test_live_pausing_after_this_step(tmp_path, snap_compare):
    async def run_before(pilot):
        await _live(pilot, episode_events("ep-live"), control=EpisodeControl())
        await pilot.press("space")

    assert snap_compare(app_for(tmp_path), run_before=run_before, terminal_size=(100, 30))


def test_edit_prompt_screen(tmp_path, snap_compare):
    async def run_before(pilot):
        app = pilot.app
        control = _paused_control(app, "ep-live", 3)
        await _live(pilot, episode_events("ep-live", streaming=None), control=control)
        await pilot.pause(0.2)
        await pilot.press("e")
        await pilot.pause(0.2)
        app.screen.query_one("#edit-system", TextArea).move_cursor((0, 0))

    assert snap_compare(app_for(tmp_path), run_before=run_before, terminal_size=(100, 30))


def test_help_screen(tmp_path, snap_compare):
    assert snap_compare(app_for(tmp_path), press=["question_mark"], terminal_size=(100, 40))


def test_training_screen(tmp_path, snap_compare, lab_db):
    db, _ = lab_db
    assert snap_compare(app_for(tmp_path, db), press=["t"], terminal_size=(100, 36))


def test_training_without_mlx(tmp_path, snap_compare, lab_db, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlx_lm" else real(name, *a))
    db, _ = lab_db
    assert snap_compare(app_for(tmp_path, db), press=["t"], terminal_size=(100, 30))


# --- history ------------------------------------------------------------------------


def _step_shown(pilot, step: int) -> bool:
    screen = pilot.app.screen
    return (
        isinstance(screen, HistoryScreen)
        and screen.record is not None
        and screen.record.step == step
        and screen.shown_step == step
    )


def test_history_at_step(tmp_path, snap_compare, lab_db):
    db, ids = lab_db

    async def run_before(pilot):
        pilot.app.push_screen(HistoryScreen(ids["episode"], step=2))
        await wait_until(pilot, lambda: _step_shown(pilot, 2))
        await pilot.press("right")
        await wait_until(pilot, lambda: _step_shown(pilot, 3))
        await pilot.pause(0.1)

    assert snap_compare(app_for(tmp_path, db), run_before=run_before, terminal_size=(120, 36))


def test_history_context_shown(tmp_path, snap_compare, lab_db):
    db, ids = lab_db

    async def run_before(pilot):
        pilot.app.push_screen(HistoryScreen(ids["episode"], step=2))
        await wait_until(pilot, lambda: _step_shown(pilot, 2))
        await pilot.press("x")
        await wait_until(pilot, lambda: pilot.app.screen._context_step == 2)
        await pilot.pause(0.1)

    assert snap_compare(app_for(tmp_path, db), run_before=run_before, terminal_size=(120, 36))


def test_history_missing_episode(tmp_path, snap_compare, lab_db):
    db, _ = lab_db

    async def run_before(pilot):
        pilot.app.push_screen(HistoryScreen("ep-nope"))
        await pilot.pause(0.3)

    assert snap_compare(app_for(tmp_path, db), run_before=run_before, terminal_size=(100, 24))


# --- bad input ----------------------------------------------------------------------


def test_too_small_terminal(tmp_path, snap_compare):
    assert snap_compare(app_for(tmp_path), terminal_size=(50, 15))


def test_error_missing_folder(tmp_path, snap_compare):
    app = app_for(tmp_path, Path("no/such/folder/looper.db"))
    assert snap_compare(app, terminal_size=(100, 24))


def test_error_corrupt_database(tmp_path, snap_compare):
    bad = tmp_path / "corrupt.db"
    bad.write_bytes(b"this is not a database\n" * 200)
    assert snap_compare(app_for(tmp_path, Path(bad.name)), terminal_size=(100, 24))

