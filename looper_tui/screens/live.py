"""The live episode view: the model's output as it streams, each tool call as a block, the
step timeline, the token budget, loop alarms, and the controls (pause, step, edit, cancel).

Everything drawn here comes from the per-episode buffers (`LabState`), so switching to
another episode of the run, or coming back from another screen, redraws at once.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Tabs

from looper_engine.agent.control import ControlError, EpisodeControl
from looper_engine.episode_view import EpisodeView
from looper_tui.appref import LabContext, lab_context
from looper_tui.messages import LabChanged, ShowHistory
from looper_tui.state import LabState
from looper_tui.widgets.alarm_banner import AlarmBanner
from looper_tui.widgets.budget_gauge import BudgetGauge
from looper_tui.widgets.episode_tabs import EpisodeTabs
from looper_tui.widgets.key_footer import KeyFooter
from looper_tui.widgets.status_bar import EpisodeStatusBar
from looper_tui.widgets.step_table import StepLine, StepTable
from looper_tui.widgets.transcript import Transcript


class EpisodeSource:
    """The timeline rows of a live episode, straight from the newest view of it."""

    def __init__(self, state: LabState, episode_id: str) -> None:
        self._state = state
        self._episode_id = episode_id

    @property
    def ep(self) -> EpisodeView:
        return self._state.episode(self._episode_id)

    def __len__(self) -> int:
        return len(self.ep.steps)

    def line(self, index: int) -> StepLine | None:
        s = self.ep.steps[index]
        tool = s.tool or s.opened_tool or "…"
        done = s.result is not None or s.problem is not None or s.tool == "done"
        return StepLine(
            step=s.step,
            tool=tool,
            target=s.target if s.problem is None else "(not parsed)",
            status=s.status,
            duration_s=s.duration_s if done else None,
            tokens=s.completion_tokens if s.output_done else None,
            alarm=s.alarms[-1].loop.replace("_", " ") if s.alarms else None,
        )


class LiveScreen(Screen[None]):
    CSS_PATH = "live.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS = [
        Binding("space", "toggle_pause", "Pause/Resume", priority=True),
        Binding("n", "step", "Step", priority=True),
        Binding("e", "edit", "Edit", priority=True),
        Binding("c", "cancel", "Cancel", priority=True),
        Binding("t", "app.training", "Train"),
        Binding("h", "history", "History"),
        Binding("o", "toggle_output", "Unfold", show=False),
        Binding("left_square_bracket", "previous_episode", "Prev ep", key_display="["),
        Binding("right_square_bracket", "next_episode", "Next ep", key_display="]"),
        Binding("escape", "back", "Home"),
    ]

    def __init__(self, episode_ids: list[str], *, current: str | None = None, title: str = "") -> None:
        super().__init__()
        if not episode_ids:
            raise ValueError("a live view needs at least one episode")
        self.episode_ids = list(episode_ids)
        self.current = current if current in self.episode_ids else self.episode_ids[0]
        self.title_text = title
        self._drawn_version = -1
        self._drawn_alarms = -1
        #: Move on to a running episode when the shown one ends, until the user picks one.
        self.auto_follow = current is None

    @property
    def looper(self) -> LabContext:
        return lab_context(self)

    # --- layout -------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        state = self.looper.lab.state
        yield EpisodeStatusBar(id="status")
        yield AlarmBanner(id="alarm")
        tabs = EpisodeTabs([state.episode(e) for e in self.episode_ids], self.current, id="tabs")
        tabs.display = len(self.episode_ids) > 1
        yield tabs
        with Horizontal(id="body"):
            yield Transcript(id="transcript")
            with Vertical(id="side"):
                yield BudgetGauge(id="gauge")
                yield StepTable(follow=True, id="timeline")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)
        self._show(self.current)

    def on_screen_resume(self) -> None:
        self._drawn_version = -1
        self._sync()

    # --- drawing ------------------------------------------------------------------

    @property
    def episode(self) -> EpisodeView:
        return self.looper.lab.state.episode(self.current)

    @property
    def control(self) -> EpisodeControl | None:
        return self.looper.lab.controls.get(self.current)

    def _show(self, episode_id: str) -> None:
        self.current = episode_id
        self._drawn_version = -1
        self._drawn_alarms = -1
        timeline = self.query_one("#timeline", StepTable)
        timeline.follow = True
        timeline.set_source(EpisodeSource(self.looper.lab.state, episode_id))
        self.query_one("#tabs", EpisodeTabs).show_episode(episode_id)
        self._sync()

    def _sync(self) -> None:
        ep = self.episode
        self._draw_status()
        if ep.version == self._drawn_version:
            return
        self._drawn_version = ep.version
        self.query_one("#gauge", BudgetGauge).show(ep.context_tokens, ep.budget or ep.token_budget, ep.pruned_turns)
        self.query_one("#timeline", StepTable).refresh_rows()
        self.query_one("#transcript", Transcript).sync(ep)
        if len(ep.alarms) != self._drawn_alarms:
            self._drawn_alarms = len(ep.alarms)
            self.query_one("#alarm", AlarmBanner).show(ep.alarms[-1] if ep.alarms else None, len(ep.alarms))

    def _draw_status(self) -> None:
        control = self.control
        self.query_one("#status", EpisodeStatusBar).show(
            self.episode, control.state if control else None, self.looper.clock(), self.title_text
        )

    def _tick(self) -> None:
        self._draw_status()

    def lab_changed(self, message: LabChanged) -> None:
        changed = message.changes.episodes
        tabs = self.query_one("#tabs", EpisodeTabs)
        state = self.looper.lab.state
        for episode_id in self.episode_ids:
            if episode_id in changed:
                tabs.update_episode(state.episode(episode_id))
        if self.current in changed:
            self._sync()
            if self.auto_follow and self.episode.finished is not None:
                self._follow_next()

    def _follow_next(self) -> None:
        state = self.looper.lab.state
        running = [e for e in self.episode_ids if state.episode(e).finished is None]
        started = [e for e in running if state.episode(e).started_ts is not None]
        if started or running:
            self._show((started or running)[0])

    @on(Tabs.TabActivated, "#tabs")
    def _tab_activated(self, event: Tabs.TabActivated) -> None:
        episode_id = self.query_one("#tabs", EpisodeTabs).episode_of(event.tab)
        if episode_id and episode_id != self.current:
            self.auto_follow = False
            self._show(episode_id)

    @on(StepTable.Selected, "#timeline")
    def _timeline_selected(self, event: StepTable.Selected) -> None:
        ep = self.episode
        if 0 <= event.index < len(ep.steps):
            self.post_message(ShowHistory(ep.id, step=ep.steps[event.index].step))

    # --- controls -----------------------------------------------------------------

    def _live_control(self) -> EpisodeControl | None:
        control = self.control
        if control is None:
            self.notify("this episode is not running in this session", severity="warning")
            return None
        if control.state in ("finished", "cancelled") or self.episode.finished is not None:
            self.notify(f"the episode has ended ({self.episode.status})", severity="warning")
            return None
        return control

    def action_toggle_pause(self) -> None:
        control = self._live_control()
        if control is None:
            return
        control.toggle()
        self._draw_status()

    def action_step(self) -> None:
        control = self._live_control()
        if control is None:
            return
        control.step()
        self.notify("running one tool call, then pausing", timeout=2)
        self._draw_status()

    def action_edit(self) -> None:
        control = self._live_control()
        if control is None:
            return
        if control.state != "paused":
            self.notify("pause first (space): the prompt can be edited between steps", severity="warning")
            return
        try:
            system_prompt, messages = control.snapshot()
        except ControlError as exc:
            self.notify(str(exc), severity="warning")
            return
        from looper_tui.screens.edit_prompt import EditPromptScreen, PromptEdit

        def saved(edit: PromptEdit | None) -> None:
            if edit is None or (edit.system_prompt is None and edit.messages is None):
                return
            try:
                control.edit(edit.system_prompt, edit.messages)
            except ControlError as exc:
                self.notify(str(exc), severity="error")
                return
            self.notify("edit saved: the next model call uses it", timeout=3)

        self.app.push_screen(EditPromptScreen(system_prompt, messages, step=self.episode.paused_at or 0), saved)

    def action_cancel(self) -> None:
        control = self._live_control()
        if control is None:
            return
        control.cancel()
        self.notify("cancelling: the episode stops and is recorded as cancelled", timeout=3)
        self._draw_status()

    def action_history(self) -> None:
        self.post_message(ShowHistory(self.current))

    def action_toggle_output(self) -> None:
        if not self.query_one("#transcript", Transcript).toggle_newest_output():
            self.notify("no tool output to unfold yet", timeout=2)

    def _switch(self, delta: int) -> None:
        if len(self.episode_ids) < 2:
            return
        index = (self.episode_ids.index(self.current) + delta) % len(self.episode_ids)
        self.auto_follow = False
        self._show(self.episode_ids[index])

    def action_previous_episode(self) -> None:
        self._switch(-1)

    def action_next_episode(self) -> None:
        self._switch(1)

    def action_back(self) -> None:
        self.app.pop_screen()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("previous_episode", "next_episode"):
            return len(self.episode_ids) > 1
        return True

    def screen_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Pause / resume", "Pause at the next step boundary, or resume", self.action_toggle_pause)
        yield SystemCommand("Step", "Run exactly one more tool call, then pause", self.action_step)
        yield SystemCommand("Edit prompt", "Edit the system prompt and pending messages (paused)", self.action_edit)
        yield SystemCommand("Cancel episode", "Stop it; it stays recorded as cancelled", self.action_cancel)
        yield SystemCommand("History of this episode", "Replay it step by step", self.action_history)

