"""`t` -> the training screen: check the data, start, progress reaches the screen, the
adapter is registered. Real mlx-lm on the tiny model, real store, real Textual app."""

import asyncio

import pytest
from textual.app import App
from textual.widgets import Button, DataTable, Input, ProgressBar, Sparkline, Static
from tui_helpers import make_app

from looper_engine.consolidation.registry import list_adapters
from looper_engine.events import (
    CallParsed,
    ContextBuilt,
    EpisodeFinished,
    EpisodeStarted,
    EventBus,
    ModelOutput,
    Observation,
    ToolResult,
)
from looper_engine.models.tiny import build_tiny_model
from looper_engine.store.db import Store
from looper_engine.store.writer import StoreWriter
from looper_tui.lab import Lab
from looper_tui.screens.home import HomeScreen
from looper_tui.screens.new_run import NewRunScreen
from looper_tui.screens.train import TrainScreen


def record_short_episode(bus, ep: str, task: str, command: str) -> None:
    """A resolved one-step episode with short prompts, as the store records any episode."""
    base = {"episode_id": ep}
    bus.publish(EpisodeStarted(**base, task_id=task, suite="koans", family=task.split("/")[0],
                               model="scripted:oracle", model_label="scripted policy: oracle", scripted=True,
                               system_prompt="Fix bugs. One tool call per reply.", task_prompt=f"Task {task}",
                               max_steps=3, token_budget=1000))
    bus.publish(ContextBuilt(**base, step=1, n_messages=2, context_tokens=20, budget=1000))
    bus.publish(ModelOutput(**base, step=1, text=f"<bash>{command}</bash>"))
    bus.publish(CallParsed(**base, step=1, tool="bash", target=command, call={"tool": "bash", "command": command}))
    bus.publish(ToolResult(**base, step=1, tool="bash", ok=True, exit_code=0, output="ok"))
    bus.publish(Observation(**base, step=1, text="ok"))
    bus.publish(EpisodeFinished(**base, status="resolved", resolved=True, reason="done", steps=1))


class Host(App):
    def __init__(self, lab: Lab, adapters) -> None:
        super().__init__()
        self.lab, self.adapters = lab, adapters

    async def on_mount(self) -> None:
        await self.lab.open()
        for i, (task, cmd) in enumerate(
            [("off_by_one/a", "pytest -q"), ("dict_set/b", "ls"), ("async/c", "cat a.py"), ("numeric/d", "pwd")]
        ):
            record_short_episode(self.lab.bus, f"ep-{i}", task, cmd)
        await self.lab.writer.flush()
        await self.push_screen(TrainScreen(self.lab, adapters_dir=self.adapters))

    async def on_unmount(self) -> None:
        await self.lab.close()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny")


async def until(pilot, cond, timeout=120.0):
    async def poll():
        while not cond():
            await pilot.pause(0.1)

    await asyncio.wait_for(poll(), timeout)


async def _record_episodes(db) -> None:
    store = await Store.open(db)
    bus = EventBus()
    writer = StoreWriter(store, bus, linger_s=0).start()
    for i, (task, cmd) in enumerate(
        [("off_by_one/a", "pytest -q"), ("dict_set/b", "ls"), ("async/c", "cat a.py"), ("numeric/d", "pwd")]
    ):
        record_short_episode(bus, f"ep-{i}", task, cmd)
    await writer.close()
    await store.close()


async def checked_training_screen(app, pilot, tiny, iters: int) -> TrainScreen:
    """From the lab home: `t`, the tiny model and `iters`, and the data checked."""
    await until(pilot, lambda: isinstance(app.screen, HomeScreen) and app.screen._data is not None)
    await pilot.press("t")
    await until(pilot, lambda: isinstance(app.screen, TrainScreen))
    screen = app.screen
    screen.query_one("#model", Input).value = str(tiny)
    screen.query_one("#iters", Input).value = str(iters)
    await pilot.click("#check")
    await until(pilot, lambda: not screen.query_one("#start", Button).disabled)
    return screen


async def test_t_check_start_progress_and_the_adapter_is_registered_and_runnable(tmp_path, tiny):
    await _record_episodes(tmp_path / "lab.db")
    app = make_app(tmp_path, tmp_path / "lab.db", adapters_dir=tmp_path / "adapters")
    async with app.run_test(size=(110, 50)) as pilot:
        screen = await checked_training_screen(app, pilot, tiny, 6)
        stats = str(screen.query_one("#stats", Static).content)
        assert "samples 4" in stats and "format check: every assistant turn parses" in stats
        await pilot.click("#start")
        await until(pilot, lambda: "registered" in str(screen.query_one("#result", Static).content))
        assert screen.query_one("#progress", ProgressBar).progress == 6
        assert screen.query_one("#train-loss", Sparkline).data
        records = await list_adapters(app.lab.store)
        assert len(records) == 1 and records[0].strategy == "naive"
        adapter = records[0]
        assert (tmp_path / "adapters" / adapter.id / "adapters.safetensors").is_file()
        # Back home, the adapter is listed, and choosing it starts a new run with it.
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, HomeScreen)
                    and app.screen.query_one("#adapters", DataTable).row_count == 1)
        home = app.screen
        assert home.query_one("#adapters-pane").display
        home.query_one("#adapters", DataTable).focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, NewRunScreen))
        assert app.screen.query_one("#model", Input).value == f"mlx:{adapter.base_model}@{adapter.id}"


async def test_a_missing_base_model_is_one_message_on_screen(tmp_path):
    app = Host(Lab(tmp_path / "lab.db"), tmp_path / "adapters")
    async with app.run_test(size=(110, 50)) as pilot:
        screen = app.screen
        screen.query_one("#model", Input).value = str(tmp_path / "nope")
        await pilot.click("#check")
        await until(pilot, lambda: "missing" in str(screen.query_one("#stats", Static).content))
        assert screen.query_one("#start", Button).disabled


async def test_training_goes_on_behind_the_lab_and_t_shows_the_same_screen_again(tmp_path, tiny):
    await _record_episodes(tmp_path / "lab.db")
    app = make_app(tmp_path, tmp_path / "lab.db", adapters_dir=tmp_path / "adapters")
    async with app.run_test(size=(110, 50)) as pilot:
        screen = await checked_training_screen(app, pilot, tiny, 300)
        await pilot.click("#start")
        await until(pilot, lambda: screen.job is not None and screen.job.last is not None)
        # Back to the lab while it trains: the job is not cancelled, and it finishes.
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, HomeScreen))
        assert screen.job is not None and screen.job.last.iteration < 300  # still training
        await until(pilot, lambda: app.screen.query_one("#adapters", DataTable).row_count == 1)
        assert isinstance(app.screen, HomeScreen)
        (record,) = await list_adapters(app.lab.store)
        # `t` opens the same screen, as it was left: the form and the result of the job.
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, TrainScreen))
        assert app.screen is screen
        assert screen.query_one("#iters", Input).value == "300"
        assert f"adapter {record.id} registered" in str(screen.query_one("#result", Static).content)
        # `?` over it, then Training from the command palette: back to the training screen,
        # not a second copy of it.
        await pilot.press("question_mark")
        await until(pilot, lambda: not isinstance(app.screen, TrainScreen))
        app.action_training()
        await until(pilot, lambda: app.screen is screen)
        assert sum(isinstance(s, TrainScreen) for s in app.screen_stack) == 1
