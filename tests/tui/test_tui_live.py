"""The live view's keys, driven through the real app, bus, engine and store: what a key
does is checked where it lands (the events, what the backend received, the database)."""

from textual.content import Content
from textual.widgets import Static, TextArea
from tui_helpers import make_app, tiny_task, wait_until

from looper_engine.chat import Message
from looper_engine.models.scripted import ScriptedBackend
from looper_tui.lab import RunRequest
from looper_tui.screens.edit_prompt import EditPromptScreen
from looper_tui.screens.live import LiveScreen
from looper_tui.widgets.alarm_banner import AlarmBanner
from looper_tui.widgets.step_block import StepBlock
from looper_tui.widgets.step_table import StepTable
from looper_tui.widgets.transcript import Transcript


def text_of(widget: Static) -> str:
    content = widget.content
    return content.plain if isinstance(content, Content) else str(content)


def status_text(app) -> str:
    """The live view's status bar ("" while the screen is still being built)."""
    found = app.screen.query("#status")
    return text_of(found.first(Static)) if found else ""


def start(app, tmp_path, policy="never-done", rate=0.0, tasks=None, start_paused=False, **request):
    backend = ScriptedBackend(policy, rate=rate)
    request.setdefault("concurrency", 1)
    runner = app.start_run(
        RunRequest(model=f"scripted:{policy}", **request),
        tasks=tasks or [tiny_task(tmp_path)],
        backend=backend,
        start_paused=start_paused,
    )
    assert runner is not None
    return runner, backend


async def test_space_pauses_at_the_next_step_boundary_and_says_so(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        seen = app.lab.bus.subscribe(kinds=["context_built", "paused", "tool_result"])
        # A slow stream, so that the key lands while the model is still writing step 1.
        runner, _ = start(app, tmp_path, rate=10)
        ep = runner.episodes[0]
        await wait_until(pilot, lambda: ep.step >= 1)
        await pilot.press("space")
        assert "pausing after this step" in status_text(app)
        await wait_until(pilot, lambda: "paused at" in status_text(app))
        events = seen.drain()
        (paused,) = [e for e in events if e.kind == "paused"]
        built = [e.step for e in events if e.kind == "context_built"]
        assert built[-1] == paused.step  # nothing started after the pause point
        assert f"paused at step {paused.step}" in status_text(app)
        await pilot.pause(0.3)
        assert [e for e in seen.drain() if e.kind == "context_built"] == []
        await pilot.press("space")
        await wait_until(pilot, lambda: ep.step > paused.step)
        assert "running" in status_text(app)


async def test_n_runs_exactly_one_tool_call_then_pauses(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        seen = app.lab.bus.subscribe(kinds=["context_built", "paused", "tool_result"])
        runner, backend = start(app, tmp_path, start_paused=True)
        ep = runner.episodes[0]
        await wait_until(pilot, lambda: ep.control.state == "paused")
        for expected in (1, 2):
            seen.drain()
            await pilot.press("n")
            await wait_until(pilot, lambda n=expected: f"paused at step {n}" in status_text(app))
            events = seen.drain()
            assert [e.step for e in events if e.kind == "context_built"] == [expected]
            assert [e.step for e in events if e.kind == "tool_result"] == [expected]
            assert [(e.step, e.reason) for e in events if e.kind == "paused"] == [(expected, "step")]
            assert len(backend.received) == expected
            assert f"paused at step {expected}" in status_text(app)


async def test_an_edit_made_while_paused_is_what_the_next_call_receives(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        runner, backend = start(app, tmp_path, start_paused=True)
        ep = runner.episodes[0]
        await wait_until(pilot, lambda: ep.control.state == "paused")
        await pilot.press("n")
        await wait_until(pilot, lambda: ep.control.state == "paused" and ep.step == 1)
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, EditPromptScreen))
        system, messages = ep.control.snapshot()
        app.screen.query_one("#edit-system", TextArea).text = "EDITED: fix calc.py, nothing else."
        edited_history = "=== user ===\nEDITED TASK\n=== assistant ===\n" + messages[1].content + (
            "\n=== user ===\n" + messages[2].content
        )
        app.screen.query_one("#edit-messages", TextArea).text = edited_history
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen))
        await pilot.press("space")
        await wait_until(pilot, lambda: len(backend.received) >= 2)
        sent = backend.received[1]
        assert sent[0] == Message(role="system", content="EDITED: fix calc.py, nothing else.")
        assert sent[1] == Message(role="user", content="EDITED TASK")
        assert sent[2:] == messages[1:]


async def test_editing_asks_for_a_pause_first(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        runner, _ = start(app, tmp_path, rate=10)
        await wait_until(pilot, lambda: runner.episodes[0].step >= 1)
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, LiveScreen)
        assert any("pause first" in n.message for n in app._notifications)


async def test_resume_finishes_the_episode(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        runner, _ = start(app, tmp_path, policy="oracle", start_paused=True)
        ep = runner.episodes[0]
        await wait_until(pilot, lambda: "paused" in status_text(app))
        assert "paused before step 1" in status_text(app)
        await pilot.press("space")
        await wait_until(pilot, lambda: app.lab.state.episode(ep.id).finished is not None)
        await pilot.pause(0.1)
        assert "resolved" in status_text(app)
        await app.lab.writer.flush()
        row = await app.lab.store.episode(ep.id)
        assert row is not None and row.status == "resolved" and row.steps == 4


async def test_cancel_leaves_a_stored_cancelled_episode(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        runner, _ = start(app, tmp_path, rate=10)
        ep = runner.episodes[0]
        await wait_until(pilot, lambda: ep.step >= 1)
        await pilot.press("c")
        await wait_until(pilot, lambda: app.lab.state.episode(ep.id).finished is not None)
        await app.lab.writer.flush()
        row = await app.lab.store.episode(ep.id)
        assert row is not None and row.status == "cancelled"
        await pilot.pause(0.1)
        assert "cancelled" in status_text(app)


async def test_a_loop_alarm_shows_a_banner_a_notification_and_a_timeline_mark(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        runner, _ = start(app, tmp_path, policy="looper", max_steps=5)
        ep = runner.episodes[0]
        await wait_until(pilot, lambda: app.lab.state.episode(ep.id).finished is not None)
        await pilot.pause(0.1)
        state = app.lab.state.episode(ep.id)
        assert state.alarms
        banner = app.screen.query_one("#alarm", AlarmBanner)
        assert banner.display
        assert "LOOP DETECTED" in text_of(banner) and "repeated" in text_of(banner)
        assert any((n.title or "").startswith("Loop detected") for n in app._notifications)
        timeline = app.screen.query_one("#timeline", StepTable)
        marked = [timeline.source.line(i) for i in range(timeline.row_count)]
        assert any(line.alarm for line in marked if line is not None)


async def test_switching_episodes_keeps_each_stream(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        tasks = [tiny_task(tmp_path, "one"), tiny_task(tmp_path, "two")]
        runner, _ = start(app, tmp_path, tasks=tasks, concurrency=2, max_steps=3)
        first, second = (e.id for e in runner.episodes)
        await pilot.pause()
        screen = app.screen
        screen.auto_follow = False  # as when the user has picked an episode
        await wait_until(pilot, lambda: all(app.lab.state.episode(i).finished for i in (first, second)))
        await pilot.pause(0.1)
        transcript = screen.query_one("#transcript", Transcript)

        def shown() -> list[str]:
            return [text_of(b._output) for b in transcript.query(StepBlock)]

        if screen.current != first:  # on a slow machine the view may have followed the run on
            await pilot.press("right_square_bracket")
            await pilot.pause(0.1)
        assert screen.current == first
        mine = shown()
        await pilot.press("right_square_bracket")
        await pilot.pause(0.1)
        assert screen.current == second
        # The hidden episode streamed into its own buffer; it is all there.
        theirs = shown()
        assert len(theirs) == 3 and all("echo checking" in t for t in theirs)
        assert "tiny/two" in text_of(screen.query_one("#status", Static))
        await pilot.press("left_square_bracket")
        await pilot.pause(0.1)
        assert screen.current == first and shown() == mine


async def test_the_view_follows_the_run_to_the_next_episode(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        tasks = [tiny_task(tmp_path, "one"), tiny_task(tmp_path, "two")]
        runner, _ = start(app, tmp_path, tasks=tasks, concurrency=1, max_steps=2)
        first, second = (e.id for e in runner.episodes)
        await wait_until(pilot, lambda: app.lab.state.episode(first).finished is not None)
        await wait_until(pilot, lambda: app.screen.current == second)
