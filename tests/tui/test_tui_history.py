"""History and replay: stepping through a stored episode, long episodes paged from the
store, and "resume from here" forking a linked episode."""

from textual.widgets import Static, TextArea
from tui_helpers import make_app, record_lab, record_long_episode, wait_until

from looper_engine.events import EpisodeStarted
from looper_engine.models.scripted import ScriptedBackend
from looper_engine.store.replay import trajectory_from_events
from looper_engine.tasks.suites import get_task
from looper_tui.lab import RunRequest
from looper_tui.screens.fork import ForkScreen
from looper_tui.screens.history import PAGE, HistoryScreen
from looper_tui.screens.live import LiveScreen
from looper_tui.widgets.step_table import StepTable


def text_of(widget: Static) -> str:
    content = widget.content
    return getattr(content, "plain", str(content))


def detail(app, name: str) -> str:
    return text_of(app.screen.query_one(f"#detail-{name}", Static))


async def test_stepping_shows_each_step_and_the_exact_context(tmp_path):
    ids = await record_lab(tmp_path / "lab.db")
    app = make_app(tmp_path, tmp_path / "lab.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.show_history(ids["episode"], step=1)
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.record is not None)
        screen = app.screen
        assert "<read>calc.py</read>" in detail(app, "output")
        await pilot.press("right")
        await wait_until(pilot, lambda: screen.record is not None and screen.record.step == 2)
        assert "pytest" in detail(app, "output") and "exit 1" in detail(app, "result")
        await pilot.press("j")
        await wait_until(pilot, lambda: screen.record.step == 3)
        assert "loop alarm" in detail(app, "head")
        await pilot.press("k")
        await wait_until(pilot, lambda: screen.record.step == 2)
        await pilot.press("x")
        await wait_until(pilot, lambda: screen._context_step == 2)
        shown = text_of(screen.query_one("#context-text", Static))
        traj = trajectory_from_events(await app.lab.store.events(ids["episode"]))
        for i, message in enumerate(traj.context(2)):
            assert f"{i}: {message.role}" in shown
            assert message.content.splitlines()[0] in shown
        assert "3: " in shown and "4: " not in shown


async def test_a_long_episode_is_read_a_page_at_a_time(tmp_path):
    db = tmp_path / "long.db"
    episode_id = await record_long_episode(db, steps=1500)
    app = make_app(tmp_path, db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.show_history(episode_id)
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.record is not None)
        screen = app.screen
        assert len(screen.source) == 1500
        assert set(screen.source._pages) == {0}
        screen.query_one("#history-steps", StepTable).focus()
        await pilot.press("end")
        await wait_until(pilot, lambda: screen.record is not None and screen.record.step == 1500)
        assert set(screen.source._pages) == {0, 1499 // PAGE}
        assert detail(app, "head").startswith("step 1500")


async def test_resume_from_here_forks_a_linked_episode_with_the_edited_prompt(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        runner = app.start_run(
            RunRequest(model="scripted:oracle", concurrency=1),
            tasks=[get_task("off_by_one/date_range")],
            backend=ScriptedBackend("oracle", rate=0),
            show=False,
        )
        parent = runner.episodes[0].id
        await wait_until(pilot, lambda: app.lab.state.episode(parent).finished is not None, timeout=90)
        await app.lab.writer.flush()
        app.show_history(parent, step=1)
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.record is not None)
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(app.screen, ForkScreen))
        prompt = app.screen.query_one("#fork-prompt", TextArea)
        prompt.text = prompt.text + "\nForked: be brief."
        app.screen.query_one("#fork-rate").value = "0"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen))
        child = app.screen.current
        assert child != parent
        await wait_until(pilot, lambda: app.lab.state.episode(child).finished is not None, timeout=90)
        await app.lab.writer.flush()
        row = await app.lab.store.episode(child)
        assert row is not None and row.parent_id == parent and row.fork_step == 1
        assert row.status == "resolved"
        (started,) = await app.lab.store.events(child, kinds=["episode_started"])
        assert isinstance(started, EpisodeStarted) and started.system_prompt.endswith("Forked: be brief.")
        assert "fork of" in text_of(app.screen.query_one("#status", Static))
