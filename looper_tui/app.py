"""The Looper lab: a Textual app over one database and one event bus.

The engine runs in the app's own asyncio loop (Textual workers). One long-lived worker
consumes the bus through a bounded subscription and posts a `BusBatch` at most once a frame;
the app folds it into the per-episode buffers (`LabState`) and tells the screens what
changed. Only message handlers touch widgets.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.geometry import Size
from textual.screen import Screen
from textual.theme import Theme

from looper_engine.agent.runner import Runner
from looper_engine.errors import UserError
from looper_engine.evaluation.minilab import MiniLabSettings
from looper_engine.events import LoopAlarm
from looper_engine.models.base import Backend
from looper_engine.store.db import DEFAULT_DB
from looper_engine.tasks.model import Task
from looper_tui.lab import Lab, RunRequest
from looper_tui.messages import (
    AdapterTrained,
    BusBatch,
    LabChanged,
    LabView,
    NewRun,
    OpenEpisode,
    OpenMiniLab,
    ShowHistory,
    ShowLive,
    ShowResults,
    StartDemo,
    StartFork,
)
from looper_tui.screens.error import ErrorScreen
from looper_tui.screens.help import HelpScreen
from looper_tui.screens.home import HomeScreen
from looper_tui.screens.too_small import TooSmallScreen
from looper_tui.screens.training import TrainingScreen
from looper_tui.settings import Settings, config_dir, load_settings, save_settings
from looper_tui.state import loop_name
from looper_tui.themes import (
    DEFAULT_THEME,
    SHIPPED_THEMES_DIR,
    load_theme_file,
    load_themes,
    variable_defaults,
)

#: Below this the screens cannot show what they must; the lab asks for a bigger terminal.
MIN_WIDTH, MIN_HEIGHT = 60, 20
#: Bus batches per second at most: text is appended a frame at a time, never per token.
FRAME_S = 1 / 30
#: Events a lagging UI may hold before text deltas are dropped (the whole text still
#: arrives with each step's model_output event).
MAX_PENDING = 5000
#: The stylesheets of the screens one key opens over a busy live view (`?`, `t`), read when
#: the app starts: a screen's first push would otherwise reparse the whole stylesheet and
#: restyle every node on screen (~200 ms with a live episode drawn).
KEY_SCREEN_CSS = ["screens/help.tcss", "screens/train.tcss", "screens/training.tcss"]


class LooperApp(App[int]):
    TITLE = "Looper"
    CSS_PATH = ["app.tcss", *KEY_SCREEN_CSS]
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        db_path: Path | str = DEFAULT_DB,
        *,
        theme: str | None = None,
        clock: Callable[[], float] = time.time,
        config_folder: Path | None = None,
        frame_s: float = FRAME_S,
        workspace_parent: Path | None = None,
        blink: bool = True,
        adapters_dir: Path = Path("adapters"),
        minilab: MiniLabSettings | None = None,
    ) -> None:
        super().__init__()
        #: Where the training screen writes adapters (`adapters/<id>/`, mlx-lm's layout).
        self.adapters_dir = adapters_dir
        self.clock = clock
        #: Cursor blink in text fields (off in tests, so screenshots are stable).
        self.blink = blink
        self.frame_s = frame_s
        self.config_folder = config_folder or config_dir()
        self.lab = Lab(Path(db_path), workspace_parent=workspace_parent)
        self.settings, settings_problem = load_settings(self.config_folder)
        #: What the welcome screen's mini-lab runs (its model, families, training).
        self.minilab = minilab or self.settings.minilab
        self._startup_notes: list[tuple[str, str]] = []
        if settings_problem:
            self._startup_notes.append((settings_problem, "warning"))
        self._alarm_seen: dict[tuple[str, str], int] = {}
        self._setup_themes(theme)

    # --- themes and settings ----------------------------------------------------------

    def _setup_themes(self, requested: str | None) -> None:
        themes, problems = load_themes([SHIPPED_THEMES_DIR, self.config_folder / "themes"])
        for theme in themes:
            self.register_theme(theme)
        if problems:
            lines = "\n".join(p.line() for p in problems)
            self._startup_notes.append((f"skipped bad theme file(s):\n{lines}", "warning"))
        chosen = requested or self.settings.theme or DEFAULT_THEME
        if requested and requested.endswith(".toml"):
            try:
                theme = load_theme_file(Path(requested))
            except ValueError as exc:
                self._startup_notes.append((f"theme {requested}: {exc}", "warning"))
                chosen = self.settings.theme or DEFAULT_THEME
            else:
                self.register_theme(theme)
                chosen = theme.name
        if chosen not in self.available_themes:
            self._startup_notes.append(
                (f"unknown theme {chosen!r}; using {DEFAULT_THEME} (themes: {', '.join(self.looper_themes())})", "warning")
            )
            chosen = DEFAULT_THEME if DEFAULT_THEME in self.available_themes else "textual-dark"
        self.theme = chosen
        if requested and chosen != self.settings.theme:
            self._remember_theme(self.get_theme(chosen))

    def looper_themes(self) -> list[str]:
        return sorted(name for name in self.available_themes if name.startswith("looper"))

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return variable_defaults(self.current_theme)

    def _remember_theme(self, theme: Theme | None) -> None:
        if theme is None or theme.name == self.settings.theme:
            return
        self.settings = Settings(**{**self.settings.model_dump(), "theme": theme.name})
        problem = save_settings(self.settings, self.config_folder)
        if problem:
            self.notify(problem, severity="warning")

    # --- lifetime ---------------------------------------------------------------------

    async def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        for note, severity in self._startup_notes:
            self.notify(note, severity=severity, timeout=8)  # type: ignore[arg-type]
        try:
            await self.lab.open()
        except UserError as exc:
            await self.push_screen(ErrorScreen(str(exc), title="Looper cannot open its database"))
            self._check_size()
            return
        self._consume_bus()
        await self.push_screen(HomeScreen())
        self._check_size()

    async def on_unmount(self) -> None:
        # However the app ends, close the database: its connection thread would keep the
        # process alive, and what the writer still holds belongs on disk.
        await self.lab.close()

    async def action_quit(self) -> None:
        if self.lab.busy:
            self.notify("cancelling the running episodes…", timeout=2)
        await self.lab.close()
        self.exit(0)

    # --- the bus ----------------------------------------------------------------------

    @work(exclusive=True, group="bus")
    async def _consume_bus(self) -> None:
        sub = self.lab.bus.subscribe(max_pending=MAX_PENDING)
        try:
            while True:
                batch = await sub.get_batch()
                if not batch:
                    return
                message = BusBatch(batch)
                self.post_message(message)
                await message.handled.wait()
                # Let deltas pile up (and coalesce) for a frame before the next batch.
                await asyncio.sleep(self.frame_s)
        finally:
            sub.close()

    def on_bus_batch(self, message: BusBatch) -> None:
        try:
            changes = self.lab.state.apply(message.events)
            for alarm in changes.alarms:
                self._announce_alarm(alarm)
            if not changes:
                return
            if not self.is_running:
                return  # shutting down: the screens are being taken apart
            update = LabChanged(changes)
            for screen in self.screen_stack:
                # A screen still composing draws from the state when it mounts.
                if isinstance(screen, LabView) and screen.is_mounted:
                    screen.lab_changed(update)
        finally:
            message.handled.set()

    def _announce_alarm(self, alarm: LoopAlarm) -> None:
        key = (alarm.episode_id or "", alarm.loop)
        last = self._alarm_seen.get(key)
        # One toast per loop, again only if it persists: a looping model alarms every step.
        if last is not None and alarm.step - last < 5:
            return
        self._alarm_seen[key] = alarm.step
        ep = self.lab.state.episodes.get(alarm.episode_id or "")
        task = ep.task_id if ep else "?"
        self.notify(
            f"{task}, step {alarm.step}: {alarm.detail}",
            title=f"Loop detected: {loop_name(alarm.loop)}",
            severity="warning",
            timeout=6,
        )

    # --- starting things ------------------------------------------------------------

    def start_run(
        self,
        request: RunRequest,
        *,
        tasks: list[Task] | None = None,
        backend: Backend | None = None,
        start_paused: bool = False,
        show: bool = True,
    ) -> Runner | None:
        """Start a run and (by default) switch to its live view. None, with a
        notification, when the request cannot run."""
        try:
            runner = self.lab.prepare_run(request, tasks=tasks, backend=backend, start_paused=start_paused)
        except UserError as exc:
            self.notify(str(exc), title="Cannot start the run", severity="error")
            return None
        self.run_worker(self._run(runner), group="runs", name=runner.run_id)
        if show:
            self.show_live([e.id for e in runner.episodes], title=f"run {runner.run_id}")
        return runner

    async def _run(self, runner: Runner) -> None:
        try:
            result = await self.lab.run(runner)
        except UserError as exc:
            self.notify(str(exc), title="The run could not start", severity="error", timeout=10)
            for ep in runner.episodes:
                ep.control.cancel()
            return
        self.notify(
            f"{result.resolved}/{len(result.episodes)} resolved"
            + (" — scripted policy, not a model's result" if runner.backend.scripted else ""),
            title=f"Run {result.status}",
            timeout=6,
        )

    def start_demo(self) -> Runner | None:
        return self.start_run(RunRequest(rate=self.settings.demo_rate, name="demo"))

    def open_minilab(self) -> None:
        """Watch a model learn: the mini-lab screen, or one line saying how to get its model."""
        from looper_engine.evaluation.minilab import model_problem
        from looper_tui.screens.minilab import MiniLabScreen

        problem = model_problem(self.minilab)
        if problem is not None:
            self.notify(problem, title="The mini-lab cannot start", severity="warning", timeout=10)
            return
        self.push_screen(MiniLabScreen(self.minilab))

    def start_fork(self, episode_id: str, step: int, *, system_prompt: str | None, model: str | None,
                   rate: float) -> None:
        self.run_worker(
            self._fork(episode_id, step, system_prompt, model, rate), group="runs", name=f"fork {episode_id}"
        )

    async def _fork(self, episode_id: str, step: int, system_prompt: str | None, model: str | None,
                    rate: float) -> None:
        try:
            episode = await self.lab.prepare_fork(
                episode_id, step, system_prompt=system_prompt, model=model, rate=rate
            )
        except UserError as exc:
            self.notify(str(exc), title="Cannot fork", severity="error")
            return
        self.show_live([episode.id], title=f"fork of {episode_id} at step {step}")
        try:
            await self.lab.run_episode(episode)
        except UserError as exc:
            self.notify(str(exc), title="The fork could not start", severity="error", timeout=10)

    # --- what the screens ask for ----------------------------------------------------

    def on_open_episode(self, message: OpenEpisode) -> None:
        self.open_episode(message.episode_id)

    def on_show_live(self, message: ShowLive) -> None:
        self.show_live(message.episode_ids, current=message.current, title=message.title)

    def on_show_history(self, message: ShowHistory) -> None:
        self.show_history(message.episode_id, message.step)

    def on_open_mini_lab(self, message: OpenMiniLab) -> None:
        self.open_minilab()

    def on_adapter_trained(self, message: AdapterTrained) -> None:
        # The job may finish behind the lab home (training goes on when its screen closes).
        if isinstance(self.screen, HomeScreen):
            self.screen.reload()
    def on_show_results(self, message: ShowResults) -> None:
        self.show_results(message.experiment)

    def on_start_demo(self, message: StartDemo) -> None:
        self.start_demo()

    def on_new_run(self, message: NewRun) -> None:
        self.action_new_run(model=message.model)

    def on_start_fork(self, message: StartFork) -> None:
        self.start_fork(
            message.episode_id, message.step, system_prompt=message.system_prompt, model=message.model,
            rate=message.rate,
        )

    # --- navigation -------------------------------------------------------------------

    def show_live(self, episode_ids: list[str], *, current: str | None = None, title: str = "") -> None:
        from looper_tui.screens.live import LiveScreen

        self._pop_to_home()
        self.push_screen(LiveScreen(episode_ids, current=current, title=title))

    def show_history(self, episode_id: str, step: int | None = None) -> None:
        from looper_tui.screens.history import HistoryScreen

        self.push_screen(HistoryScreen(episode_id, step=step))

    def show_results(self, experiment: str = "") -> None:
        """An experiment's results (the newest when none is named)."""
        from looper_tui.screens.results import ResultsScreen

        self.push_screen(ResultsScreen(self.lab.db_path, experiment))

    def open_episode(self, episode_id: str) -> None:
        """The live view while this session runs it, else its recorded history."""
        ep = self.lab.state.episodes.get(episode_id)
        if ep is not None and ep.finished is None and episode_id in self.lab.controls:
            run = self.lab.state.runs.get(ep.run_id or "")
            ids = list(run.episode_ids) if run and episode_id in run.episode_ids else [episode_id]
            self.show_live(ids, current=episode_id, title=f"run {ep.run_id}" if run else "")
        else:
            self.show_history(episode_id)

    def _pop_to_home(self) -> None:
        while len(self.screen_stack) > 1 and not isinstance(self.screen, HomeScreen | ErrorScreen):
            if isinstance(self.screen, TooSmallScreen):
                break
            self.pop_screen()

    def _show_kept(self, name: str, make: Callable[[], Screen[Any]]) -> None:
        """Show the screen kept under `name` for the app's life, building it on first use.
        Closing it leaves it mounted, so it opens again at once and as it was left (a
        training job keeps running behind it); when it is already open under other screens,
        those are closed."""
        if not self.is_screen_installed(name):
            self.install_screen(make(), name)
        screen = self.get_screen(name)
        if screen in self.screen_stack:
            while self.screen is not screen:
                self.pop_screen()
            return
        self.push_screen(screen)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen | TooSmallScreen):
            self._show_kept("help", HelpScreen)

    def action_training(self) -> None:
        if isinstance(self.screen, TrainingScreen | TooSmallScreen) or type(self.screen).__name__ == "TrainScreen":
            return
        if importlib.util.find_spec("mlx_lm") is None:
            # Without the mlx extra there is nothing to train with: say so, and how to get it.
            self.push_screen(TrainingScreen(missing="mlx_lm"))
            return
        from looper_tui.screens.train import TrainScreen

        if self.lab.store is None:
            self.notify("no database is open", severity="error")
            return
        self._show_kept("train", lambda: TrainScreen(self.lab, adapters_dir=self.adapters_dir))

    def action_new_run(self, model: str | None = None) -> None:
        from looper_tui.screens.new_run import NewRunScreen

        def started(request: RunRequest | None) -> None:
            if request is not None:
                self.start_run(request)

        self.push_screen(NewRunScreen(model=model), started)

    def action_open_episode_by_id(self) -> None:
        from looper_tui.screens.ask_id import AskIdScreen

        def chosen(episode_id: str | None) -> None:
            if episode_id:
                self.show_history(episode_id)

        self.push_screen(AskIdScreen(), chosen)

    # --- terminal size ----------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        self._check_size(event.size)

    def _check_size(self, size: Size | None = None) -> None:
        width, height = size or self.size
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        showing = isinstance(self.screen, TooSmallScreen)
        if small and not showing:
            self.push_screen(TooSmallScreen(MIN_WIDTH, MIN_HEIGHT))
        elif not small and showing:
            self.pop_screen()

    # --- command palette --------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, TooSmallScreen | ErrorScreen):
            return
        for name in self.looper_themes():
            yield SystemCommand(f"Theme: {name}", f"Switch to the {name} theme (remembered)",
                                lambda name=name: setattr(self, "theme", name))
        yield SystemCommand("New run", "Choose a suite, tasks, model and framework switches", self.action_new_run)
        yield SystemCommand("Demo run", "The koans with scripted:oracle at a watchable rate", self.start_demo)
        yield SystemCommand("Open episode by id", "Replay a stored episode step by step",
                            self.action_open_episode_by_id)
        yield SystemCommand("Training", "Consolidate recorded episodes into a LoRA adapter", self.action_training)
        yield SystemCommand("Experiment results", "The newest experiment's matrix, transfer, forgetting and gate",
                            self.show_results)
        yield SystemCommand("Help", "Keys of every screen", self.action_help)
        extra = getattr(screen, "screen_commands", None)
        if extra is not None:
            yield from extra()


def build_app(args: argparse.Namespace) -> LooperApp:
    """The lab for the CLI's arguments (`.db`, `.theme`)."""
    db = Path(getattr(args, "db", None) or DEFAULT_DB)
    return LooperApp(db, theme=getattr(args, "theme", None))


def run_app(args: argparse.Namespace) -> int:
    """Open the lab (`looper` with no subcommand)."""
    return int(build_app(args).run() or 0)
