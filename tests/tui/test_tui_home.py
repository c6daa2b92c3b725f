"""The lab home, the new-run form and the bad inputs a user can give the TUI."""

import argparse
from pathlib import Path

from textual.widgets import Checkbox, DataTable, Input, Static
from tui_helpers import make_app, record_lab, tiny_task, wait_until

from looper_engine.evaluation.minilab import MiniLabSettings
from looper_engine.models.scripted import ScriptedBackend
from looper_engine.store.db import Store
from looper_tui.app import build_app
from looper_tui.lab import RunRequest
from looper_tui.screens.error import ErrorScreen
from looper_tui.screens.history import HistoryScreen
from looper_tui.screens.home import HomeScreen
from looper_tui.screens.live import LiveScreen
from looper_tui.screens.new_run import NewRunScreen
from looper_tui.screens.too_small import TooSmallScreen


def text_of(widget: Static) -> str:
    content = widget.content
    return getattr(content, "plain", str(content))


async def test_home_lists_runs_newest_first_with_their_episodes(tmp_path):
    ids = await record_lab(tmp_path / "lab.db")
    app = make_app(tmp_path, tmp_path / "lab.db")
    async with app.run_test(size=(110, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen) and app.screen._data is not None)
        runs = app.screen.query_one("#runs", DataTable)
        keys = [runs.coordinate_to_cell_key((i, 0)).row_key.value for i in range(runs.row_count)]
        assert keys == ["run-20251231-233000-bbbb", "run-20251231-220000-aaaa"]
        assert str(runs.get_row_at(0)[3]) == "1/1"
        # Moving to the older run lists its episodes.
        runs.focus()
        await pilot.press("down")
        await wait_until(pilot, lambda: app.screen.query_one("#episodes", DataTable).row_count == 2)
        episodes = app.screen.query_one("#episodes", DataTable)
        await pilot.press("tab")
        await pilot.press("down", "h")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        assert app.screen.episode_id == episodes.coordinate_to_cell_key((1, 0)).row_key.value
        assert ids["run"] == keys[0]


async def test_an_empty_lab_offers_a_watchable_demo_run(tmp_path):
    # Without a mini-lab model the demo is the welcome screen's first choice.
    app = make_app(tmp_path, minilab=MiniLabSettings(model=f"mlx:{tmp_path}/no-model"))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen) and app.screen.has_class("-empty"))
        assert "scripted policy" in text_of(app.screen.query_one("#welcome-text", Static))
        # the demo is the focused choice, so enter starts it
        await wait_until(pilot, lambda: app.focused is app.screen.query_one("#demo"))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen))
        (runner,) = app.lab.runners.values()
        assert runner.backend.spec == "scripted:oracle"
        assert runner.backend.rate == 300
        assert runner.suite == "koans" and len(runner.episodes) > 1 and runner.concurrency == 2
        await wait_until(pilot, lambda: any(app.lab.state.episode(e.id).steps for e in runner.episodes))


async def test_a_missing_database_in_an_existing_folder_is_created(tmp_path):
    db = tmp_path / "new.db"
    app = make_app(tmp_path, db)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
    assert db.exists()


async def test_a_database_in_a_missing_folder_is_one_message_not_a_traceback(tmp_path):
    app = make_app(tmp_path, tmp_path / "nowhere" / "looper.db")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorScreen))
        message = text_of(app.screen.query_one("#error-message", Static))
        assert "does not exist" in message and "nowhere" in message
        await pilot.press("q")
    assert app.return_code == 0


async def test_a_corrupt_database_is_one_message_and_stays_untouched(tmp_path):
    bad = tmp_path / "corrupt.db"
    original = b"not sqlite at all\n" * 100
    bad.write_bytes(original)
    app = make_app(tmp_path, bad)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorScreen))
        assert "not a readable Looper database" in text_of(app.screen.query_one("#error-message", Static))
    assert bad.read_bytes() == original


async def test_an_unknown_episode_id_says_so_on_screen(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
        await pilot.press("ctrl+p")
        await pilot.press(*"Open episode by id")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen.query("#ask-id"))
        await pilot.press(*"ep-nope", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        missing = app.screen.query_one("#history-missing", Static)
        await wait_until(pilot, lambda: missing.display)
        assert "No episode 'ep-nope'" in text_of(missing)
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)


async def test_a_terminal_too_small_asks_to_enlarge_and_loses_nothing(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(50, 15)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, TooSmallScreen))
        assert "at least 60×20" in text_of(app.screen.query_one("#too-small-text", Static))
        await pilot.resize_terminal(100, 30)
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
        await pilot.resize_terminal(59, 30)
        await wait_until(pilot, lambda: isinstance(app.screen, TooSmallScreen))
        await pilot.resize_terminal(60, 20)
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))


async def test_the_new_run_form_says_what_is_wrong_in_one_line(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 36)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen))
        form = app.screen
        error = form.query_one("#new-run-error", Static)
        for widget_id, value, expected in (
            ("model", "gpt-4", "KIND:NAME"),
            ("model", "scripted:oracle", None),
            ("tasks", "no_such_family/*", "no task matches"),
            ("tasks", "", None),
            ("concurrency", "0", "concurrency"),
        ):
            form.query_one(f"#{widget_id}", Input).value = value
            if expected is None:
                continue
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert isinstance(app.screen, NewRunScreen)
            assert expected in text_of(error) and "\n" not in text_of(error)
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)
        assert not app.lab.runners


async def test_the_new_run_form_starts_the_run_it_describes(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 36)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen))
        form = app.screen
        form.query_one("#tasks", Input).value = "off_by_one/date_range, off_by_one/paginate"
        form.query_one("#model", Input).value = "scripted:never-done"
        form.query_one("#concurrency", Input).value = "1"
        form.query_one("#max-steps", Input).value = "2"
        form.query_one("#switch-pruning", Checkbox).value = False
        request = form.build_request()
        assert request == RunRequest(
            tasks=["off_by_one/date_range", "off_by_one/paginate"],
            model="scripted:never-done",
            concurrency=1,
            max_steps=2,
            token_budget=8192,
            off=["pruning"],
        )
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen))
        (runner,) = app.lab.runners.values()
        assert [e.task.id for e in runner.episodes] == ["off_by_one/date_range", "off_by_one/paginate"]
        assert runner.config.pruning is False and runner.config.max_steps == 2


async def test_quitting_cancels_running_episodes_and_records_them(tmp_path):
    db = tmp_path / "looper.db"
    app = make_app(tmp_path, db)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
        runner = app.start_run(RunRequest(model="scripted:never-done", concurrency=1),
                               tasks=[tiny_task(tmp_path)], backend=ScriptedBackend("never-done", rate=10))
        await wait_until(pilot, lambda: runner.episodes[0].step >= 1)
        await pilot.press("ctrl+q")
    store = await Store.open(db, create=False)
    try:
        row = await store.episode(runner.episodes[0].id)
        assert row is not None and row.status == "cancelled"
    finally:
        await store.close()


def test_the_cli_arguments_pick_the_database_and_theme(tmp_path):
    app = build_app(argparse.Namespace(db=str(tmp_path / "x.db"), theme="looper-light"))
    assert app.lab.db_path == tmp_path / "x.db"
    assert app.theme == "looper-light"
    default = build_app(argparse.Namespace(db=None, theme=None))
    assert default.lab.db_path == Path("looper.db")
