"""History and replay: step through a stored episode. At each step, the exact context the
model saw (after pruning), its raw output, the parsed call, the tool result and the
observation it got back. `f` resumes from here: a new episode forked after this step.

Built for long episodes: the step list is a line-API table that loads rows from the store a
page at a time as they scroll into view, a step's events are read only when it is shown,
and the full history (needed only for the context) is rebuilt in the background.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Iterable

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Collapsible, Static

from looper_engine.chat import Message as ChatMessage
from looper_engine.events import EpisodeStarted, EventBase
from looper_engine.store.db import EpisodeRow, StepRow
from looper_engine.store.replay import StepRecord, Trajectory, trajectory_from_events
from looper_tui.appref import LabContext, lab_context
from looper_tui.format import (
    STATUS_GLYPH,
    STATUS_STYLE,
    clean_text,
    fmt_duration,
    fmt_tokens,
    highlight_xml,
)
from looper_tui.messages import StartFork
from looper_tui.state import loop_name
from looper_tui.widgets.key_footer import KeyFooter
from looper_tui.widgets.step_table import StepLine, StepTable
from looper_tui.widgets.tool_call import call_arguments

PAGE = 200
MAX_PAGES = 100
#: Steps of events read per query while the full history is rebuilt for the context.
CHUNK_STEPS = 500
#: Lines of one text (an output, an observation, a context message) drawn at most.
MAX_LINES = 400
_HISTORY_KINDS = ["context_built", "model_output", "observation", "prompt_edited"]


def step_line(row: StepRow) -> StepLine:
    if row.problem is not None:
        status = "malformed"
    elif row.tool == "done":
        status = "done"
    elif row.ok is None:
        status = "—"
    else:
        status = "ok" if row.ok else "failed"
    duration = (row.model_s or 0.0) + (row.tool_s or 0.0) if row.model_s is not None else None
    return StepLine(
        step=row.step,
        tool=row.tool or "—",
        target=row.target or ("(not parsed)" if row.problem else ""),
        status=status,
        duration_s=duration,
        tokens=row.completion_tokens,
        alarm=loop_name(row.alarm) if row.alarm else None,
    )


class PagedSteps:
    """Step rows of a stored episode, loaded a page at a time on demand."""

    def __init__(self, total: int, request: Callable[[int], None]) -> None:
        self.total = total
        self._request = request
        self._pages: OrderedDict[int, list[StepLine]] = OrderedDict()
        self._pending: set[int] = set()

    def __len__(self) -> int:
        return self.total

    def line(self, index: int) -> StepLine | None:
        page, offset = divmod(index, PAGE)
        rows = self._pages.get(page)
        if rows is None:
            if page not in self._pending:
                self._pending.add(page)
                self._request(page)
            return None
        self._pages.move_to_end(page)
        return rows[offset] if offset < len(rows) else None

    def put(self, page: int, rows: list[StepRow]) -> None:
        self._pending.discard(page)
        self._pages[page] = [step_line(r) for r in rows]
        while len(self._pages) > MAX_PAGES:
            self._pages.popitem(last=False)

    def step_at(self, index: int) -> int | None:
        line = self.line(index)
        return line.step if line is not None else None


def capped(text: str, limit: int = MAX_LINES) -> tuple[str, int]:
    lines = clean_text(text).split("\n")
    if len(lines) <= limit:
        return "\n".join(lines), 0
    return "\n".join(lines[:limit]), len(lines) - limit


def context_content(messages: list[ChatMessage]) -> Content:
    parts: list[Content] = []
    for i, m in enumerate(messages):
        parts.append(Content(f"── {i}: {m.role} ──").stylize("bold $primary"))
        text, more = capped(m.content)
        parts.append(highlight_xml(text) if m.role == "assistant" else Content(text))
        if more:
            parts.append(Content(f"… {more} more lines").stylize("$text-muted italic"))
    return Content("\n").join(parts)


class HistoryScreen(Screen[None]):
    CSS_PATH = "history.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS = [
        Binding("left,k", "previous_step", "Prev step", key_display="←/k"),
        Binding("right,j", "next_step", "Next step", key_display="→/j"),
        Binding("x", "toggle_context", "Context"),
        Binding("f", "fork", "Resume from here"),
        Binding("t", "app.training", "Train", show=False),
        Binding("escape", "back", "Back"),
    ]

    class Opened(Message):
        def __init__(self, episode: EpisodeRow | None, total: int, started: EpisodeStarted | None) -> None:
            super().__init__()
            self.episode = episode
            self.total = total
            self.started = started

    class PageLoaded(Message):
        def __init__(self, page: int, rows: list[StepRow]) -> None:
            super().__init__()
            self.page = page
            self.rows = rows

    class StepLoaded(Message):
        def __init__(self, step: int, record: StepRecord | None) -> None:
            super().__init__()
            self.step = step
            self.record = record

    class TrajectoryReady(Message):
        def __init__(self, trajectory: Trajectory) -> None:
            super().__init__()
            self.trajectory = trajectory

    def __init__(self, episode_id: str, *, step: int | None = None) -> None:
        super().__init__()
        self.episode_id = episode_id
        self.initial_step = step
        self.row: EpisodeRow | None = None
        self.started: EpisodeStarted | None = None
        self.source: PagedSteps | None = None
        self.trajectory: Trajectory | None = None
        self.shown_step: int | None = None
        self.record: StepRecord | None = None
        self._context_step: int | None = None

    @property
    def looper(self) -> LabContext:
        return lab_context(self)

    # --- layout -------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(Content(f"opening {self.episode_id}…").stylize("$text-muted"), id="history-title")
        yield Static("", id="history-missing")
        with Horizontal(id="history-body"):
            yield StepTable(id="history-steps")
            with VerticalScroll(id="history-detail"):
                yield Static("", id="detail-head")
                with Collapsible(title="Context the model saw", collapsed=True, id="detail-context"):
                    yield Static(Content("loading…").stylize("$text-muted"), id="context-text")
                yield Static("Model output", classes="detail-label")
                yield Static("", id="detail-output")
                yield Static("Parsed call", classes="detail-label")
                yield Static("", id="detail-call")
                yield Static("Tool result", classes="detail-label", id="result-label")
                yield Static("", id="detail-result")
                yield Static("Observation (the next user message)", classes="detail-label")
                yield Static("", id="detail-observation")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#history-missing").display = False
        self._open()

    # --- loading ------------------------------------------------------------------

    @work(exclusive=True, group="history-open")
    async def _open(self) -> None:
        store = self.looper.lab.store
        if store is None:
            self.post_message(self.Opened(None, 0, None))
            return
        row = await store.episode(self.episode_id)
        if row is None:
            self.post_message(self.Opened(None, 0, None))
            return
        total = await store.step_count(row.id)
        started = await store.events(row.id, kinds=["episode_started"])
        first = started[0] if started and isinstance(started[0], EpisodeStarted) else None
        self.post_message(self.Opened(row, total, first))

    def on_history_screen_opened(self, message: Opened) -> None:
        if message.episode is None:
            self._missing()
            return
        self.row = row = message.episode
        self.episode_id = row.id
        self.refresh_bindings()
        self.started = message.started
        self.source = PagedSteps(message.total, self._request_page)
        self.query_one("#history-title", Static).update(self._title())
        table = self.query_one("#history-steps", StepTable)
        start_index = 0
        if self.initial_step is not None and message.total:
            # Step numbers are contiguous from the first recorded one (a fork starts later).
            first_step = row.fork_step + 1 if row.fork_step else 1
            start_index = max(0, min(message.total - 1, self.initial_step - first_step))
        table.set_source(self.source, cursor=start_index)
        table.focus()
        if message.total == 0:
            self.query_one("#detail-head", Static).update(
                Content("This episode recorded no steps.").stylize("$text-muted italic")
            )

    def _missing(self) -> None:
        where = self.looper.lab.db_path
        missing = self.query_one("#history-missing", Static)
        missing.update(
            Content.assemble(
                ("No episode ", "bold"),
                (repr(self.episode_id), "bold $error"),
                (f" in {where}.\n\n", "bold"),
                "Pick one from the lab home (escape), or give a full id or a unique prefix.",
            )
        )
        missing.display = True
        self.query_one("#history-body").display = False
        self.query_one("#history-title", Static).update(Content("History").stylize("bold $accent"))

    def _title(self) -> Content:
        row = self.row
        assert row is not None
        status = row.status
        parts: list[str | tuple[str, str]] = [
            (f"{STATUS_GLYPH.get(status, '?')} {status}", STATUS_STYLE.get(status, "")),
            ("  ", ""),
            (row.task_id, "bold"),
            ("  ·  ", "$text-muted"),
            (row.model_label or row.model, "$looper-scripted" if row.scripted else ""),
            ("  ·  ", "$text-muted"),
            f"{self.source.total if self.source else 0} steps",
            ("  ·  ", "$text-muted"),
            (row.id, "$text-muted"),
        ]
        if row.parent_id:
            parts += [("  ·  ", "$text-muted"), (f"fork of {row.parent_id} after step {row.fork_step}", "$text-muted")]
        return Content.assemble(*parts)

    def _request_page(self, page: int) -> None:
        self.call_later(self._fetch_page, page)

    def _fetch_page(self, page: int) -> None:
        self.run_worker(self._load_page(page), group=f"page-{page}", exclusive=True)

    async def _load_page(self, page: int) -> None:
        store = self.looper.lab.store
        if store is None:
            return
        rows = await store.steps(self.episode_id, offset=page * PAGE, limit=PAGE)
        self.post_message(self.PageLoaded(page, rows))

    def on_history_screen_page_loaded(self, message: PageLoaded) -> None:
        if self.source is None:
            return
        self.source.put(message.page, message.rows)
        table = self.query_one("#history-steps", StepTable)
        table.refresh_rows()
        if self.source.total:
            # The cursor may have been waiting for this page.
            self._load_step_at(table.cursor)

    @on(StepTable.Highlighted, "#history-steps")
    def _highlighted(self, event: StepTable.Highlighted) -> None:
        self._load_step_at(event.index)

    def _load_step_at(self, index: int) -> None:
        if self.source is None:
            return
        step = self.source.step_at(index)
        if step is None:
            return  # its page is loading; PageLoaded comes back here
        if step != self.shown_step:
            self.shown_step = step
            self._load_step(step)

    @work(exclusive=True, group="history-step")
    async def _load_step(self, step: int) -> None:
        store = self.looper.lab.store
        if store is None or self.started is None:
            self.post_message(self.StepLoaded(step, None))
            return
        events = await store.events(self.episode_id, step_from=step, step_to=step)
        traj = trajectory_from_events([self.started, *events])
        record = next((s for s in traj.steps if s.step == step), None)
        self.post_message(self.StepLoaded(step, record))

    def on_history_screen_step_loaded(self, message: StepLoaded) -> None:
        if message.step != self.shown_step:
            return
        self.record = message.record
        self._draw_step()
        if not self.query_one("#detail-context", Collapsible).collapsed:
            self._draw_context()

    @work(exclusive=True, group="history-trajectory")
    async def _load_trajectory(self) -> None:
        store = self.looper.lab.store
        if store is None or self.started is None:
            return
        events: list[EventBase] = [self.started]
        first = (self.row.fork_step or 0) if self.row else 0
        top = first + (self.source.total if self.source else 0)
        # Read the history a chunk of steps at a time, so the UI keeps answering keys.
        for lo in range(0, top + 1, CHUNK_STEPS):
            events += await store.events(
                self.episode_id, kinds=_HISTORY_KINDS, step_from=lo, step_to=lo + CHUNK_STEPS - 1
            )
            await asyncio.sleep(0)
        traj = await asyncio.to_thread(trajectory_from_events, events)
        self.post_message(self.TrajectoryReady(traj))

    def on_history_screen_trajectory_ready(self, message: TrajectoryReady) -> None:
        self.trajectory = message.trajectory
        self._context_step = None
        self._draw_context()

    # --- drawing ------------------------------------------------------------------

    def _draw_step(self) -> None:
        rec = self.record
        head = self.query_one("#detail-head", Static)
        if rec is None:
            head.update(Content(f"step {self.shown_step}: nothing recorded").stylize("$text-muted"))
            for name in ("output", "call", "result", "observation"):
                self.query_one(f"#detail-{name}", Static).update("")
            return
        tool = rec.tool or "—"
        bits = [f"step {rec.step}", f"{tool} {rec.target}".strip()]
        bits.append(f"model {fmt_duration(rec.model_s)}")
        if rec.result is not None:
            bits.append(f"tool {fmt_duration(rec.result.duration_s)}")
        bits.append(f"{fmt_tokens(rec.completion_tokens)} tokens out")
        bits.append(f"context {fmt_tokens(rec.context_tokens)}/{fmt_tokens(rec.budget)}")
        head_content = Content(" · ".join(bits)).stylize("bold")
        for alarm in rec.alarms:
            head_content += Content(f"\n⚠ loop alarm: {loop_name(alarm.loop)} — {alarm.detail}").stylize(
                "$looper-alarm bold"
            )
        head.update(head_content)
        if self._context_step != rec.step:
            dropped = max(0, rec.dropped_upto - 2)
            shown = rec.n_messages - dropped + (1 if dropped else 0)
            self.query_one("#detail-context", Collapsible).title = (
                f"Context the model saw: {shown} messages, {rec.context_tokens:,} tokens (x shows it)"
            )
        out_text, more = capped(rec.output)
        output = highlight_xml(out_text) if rec.output else Content("(no output)").stylize("$text-muted")
        if more:
            output += Content(f"\n… {more} more lines").stylize("$text-muted italic")
        self.query_one("#detail-output", Static).update(output)
        if rec.problem is not None:
            call = Content("malformed: ").stylize("$warning bold") + Content(rec.problem).stylize("$warning")
        elif rec.call is not None:
            call = call_arguments(rec.call)
        else:
            call = Content("(none)").stylize("$text-muted")
        self.query_one("#detail-call", Static).update(call)
        result = rec.result
        if result is None:
            result_content = Content("(no tool ran)").stylize("$text-muted")
        else:
            verdict = ("✓ ok" if result.ok else "✗ failed") + (
                f" · exit {result.exit_code}" if result.exit_code is not None else ""
            )
            text, more = capped(result.output)
            result_content = Content(verdict).stylize("$success" if result.ok else "$error")
            if result.truncated:
                result_content += Content(" · output cut by the tool (head and tail kept)").stylize("$text-muted")
            result_content += Content("\n" + text if text else "")
            if more:
                result_content += Content(f"\n… {more} more lines").stylize("$text-muted italic")
        self.query_one("#detail-result", Static).update(result_content)
        obs = rec.observation
        if obs is None:
            obs_content = Content("(none: the episode ended here)").stylize("$text-muted")
        else:
            text, more = capped(obs)
            obs_content = Content(text)
            if more:
                obs_content += Content(f"\n… {more} more lines").stylize("$text-muted italic")
        self.query_one("#detail-observation", Static).update(obs_content)

    def _draw_context(self) -> None:
        step = self.shown_step
        target = self.query_one("#context-text", Static)
        collapsible = self.query_one("#detail-context", Collapsible)
        if step is None:
            return
        if self.trajectory is None:
            target.update(Content("rebuilding the history…").stylize("$text-muted italic"))
            self._load_trajectory()
            return
        if step == self._context_step:
            return
        self._context_step = step
        traj = self.trajectory
        index = next((i for i, s in enumerate(traj.steps) if s.step == step), None)
        if index is None:
            target.update(Content("(no context recorded for this step)").stylize("$text-muted"))
            return
        rec = traj.steps[index]
        messages = traj.context(index + 1)
        dropped = max(0, rec.dropped_upto - 2)
        summary = f"Context the model saw: {len(messages)} messages, {rec.context_tokens:,} tokens"
        if dropped:
            summary += f", {dropped} old messages dropped"
        if rec.elided_upto > max(2, rec.dropped_upto):
            summary += ", old outputs elided"
        collapsible.title = summary
        target.update(context_content(messages))

    # --- actions ------------------------------------------------------------------

    def _move(self, delta: int) -> None:
        table = self.query_one("#history-steps", StepTable)
        if table.row_count:
            table.move_to(table.cursor + delta)

    def action_previous_step(self) -> None:
        self._move(-1)

    def action_next_step(self) -> None:
        self._move(1)

    def action_toggle_context(self) -> None:
        collapsible = self.query_one("#detail-context", Collapsible)
        collapsible.collapsed = not collapsible.collapsed
        if not collapsible.collapsed:
            self._draw_context()

    @on(Collapsible.Expanded, "#detail-context")
    def _context_expanded(self) -> None:
        self._draw_context()

    def action_fork(self) -> None:
        if self.row is None or self.shown_step is None:
            self.notify("no step to resume from", severity="warning")
            return
        from looper_tui.screens.fork import ForkRequest, ForkScreen

        step = self.shown_step
        system_prompt = self.started.system_prompt if self.started else ""
        if self.trajectory is not None:
            index = next((i for i, s in enumerate(self.trajectory.steps) if s.step == step), None)
            if index is not None:
                system_prompt = self.trajectory.history_after(index + 1)[0].content
        row = self.row

        def chosen(request: ForkRequest | None) -> None:
            if request is None:
                return
            self.post_message(
                StartFork(row.id, step, system_prompt=request.system_prompt, model=request.model, rate=request.rate)
            )

        self.app.push_screen(ForkScreen(row, step, system_prompt), chosen)

    def action_back(self) -> None:
        self.app.pop_screen()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("previous_step", "next_step", "toggle_context", "fork"):
            return self.row is not None
        return True

    def screen_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Resume from here", "Fork a new episode after the step shown", self.action_fork)
        yield SystemCommand("Show / hide context", "The exact context the model saw", self.action_toggle_context)
