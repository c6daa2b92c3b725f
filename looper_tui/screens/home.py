"""The lab home: the runs and episodes in the database, newest first, and where new runs
start. An empty lab offers the mini-lab (a real model learning, live) and a watchable
scripted demo run."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, DataTable, Static

from looper_engine.consolidation.registry import AdapterRecord, list_adapters
from looper_engine.store.db import EpisodeRow, RunRow
from looper_tui.appref import LabContext, lab_context
from looper_tui.format import (
    STATUS_GLYPH,
    STATUS_STYLE,
    ellipsize,
    fmt_age,
    fmt_duration,
    fmt_tokens,
)
from looper_tui.messages import LabChanged, NewRun, OpenEpisode, OpenMiniLab, ShowHistory, ShowLive, StartDemo
from looper_tui.widgets.experiments_pane import ExperimentsPane
from looper_tui.widgets.key_footer import KeyFooter

RELOAD_DELAY_S = 0.5


@dataclass
class HomeData:
    runs: list[RunRow]
    episodes: list[EpisodeRow]
    run_id: str | None
    episode_count: int
    adapters: list[AdapterRecord] = field(default_factory=list)


class HomeScreen(Screen[None]):
    CSS_PATH = "home.tcss"
    BINDINGS = [
        Binding("n", "app.new_run", "New run"),
        Binding("d", "demo", "Demo run"),
        Binding("m", "minilab", "Watch a model learn"),
        Binding("h", "history", "History"),
        Binding("r", "reload", "Reload"),
        Binding("t", "app.training", "Training"),
        Binding("q", "app.quit", "Quit"),
    ]

    class Loaded(Message):
        def __init__(self, data: HomeData) -> None:
            super().__init__()
            self.data = data

    @property
    def looper(self) -> LabContext:
        return lab_context(self)

    def __init__(self) -> None:
        super().__init__()
        self._run_id: str | None = None
        self._reload_pending = False
        self._episodes: dict[str, EpisodeRow] = {}
        self._loaded_once = False
        self._data: HomeData | None = None
        self._adapters: dict[str, AdapterRecord] = {}

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="home-title")
        with Vertical(id="welcome"):
            yield Static(self._welcome_text(), id="welcome-text")
            with Center(), Horizontal(id="welcome-buttons"):
                ready = self._minilab_problem() is None
                yield Button("Watch a model learn", id="minilab", variant="primary" if ready else "default")
                yield Button("Start the demo run", id="demo", variant="default" if ready else "primary")
                yield Button("New run…", id="new-run")
        with Vertical(id="tables"):
            with Vertical(id="runs-pane") as runs_pane:
                runs_pane.border_title = "Runs"
                yield DataTable(id="runs", cursor_type="row", zebra_stripes=False)
            with Vertical(id="episodes-pane") as eps_pane:
                eps_pane.border_title = "Episodes"
                yield DataTable(id="episodes", cursor_type="row")
            with Vertical(id="adapters-pane") as ad_pane:
                ad_pane.border_title = "Adapters"
                ad_pane.border_subtitle = "enter: a new run with it"
                yield DataTable(id="adapters", cursor_type="row")
            yield ExperimentsPane(id="experiments-pane")
        yield KeyFooter()

    def _title(self) -> Content:
        return Content.assemble(
            ("Looper lab", "bold $accent"),
            ("  ·  ", "$text-muted"),
            (str(self.looper.lab.db_path), "$text-muted"),
        )

    def _minilab_problem(self) -> str | None:
        from looper_engine.evaluation.minilab import model_problem

        return model_problem(self.looper.minilab)

    def _welcome_text(self) -> Content:
        rate = int(self.looper.settings.demo_rate)
        problem = self._minilab_problem()
        minilab = (
            [("\nReady: press m.", "bold $success")]
            if problem is None
            else [("\nNot here yet: ", "$warning"), (problem.split(": ", 1)[-1], "$warning")]
        )
        return Content.assemble(
            ("Welcome to Looper.", "bold"),
            " No runs in this database yet.\n\n",
            ("Watch a model learn (m). ", "bold $accent"),
            "A ~1M-parameter model, trained here from random weights on the task world, fixes "
            "planted bugs live: its tokens stream with their rate. It solves the families it "
            "was trained on and fails the rest. Press t to teach it one it fails and run the round "
            "again: before and after side by side. Each lesson becomes an adapter for that "
            "family alone; the rest stay as they were.",
            *minilab,
            "\n\n",
            ("The scripted demo (d). ", "bold"),
            "The built-in koans (small Python bug fixes with tests) with ",
            ("scripted:oracle", "bold $looper-scripted"),
            f" streaming at {rate} tokens/s, two episodes at a time: watch the agent read, edit "
            "and test. ",
            ("scripted:oracle is a scripted policy: a demo and test driver, not a model.", "$looper-scripted"),
            "\n\nOr choose your own model and tasks with New run (n).",
        )

    def on_mount(self) -> None:
        self.set_class(True, "-empty")
        self.reload()

    def on_resize(self) -> None:
        if self._data is not None and not self.has_class("-empty"):
            self._fill_runs(self._data)
            self._fill_episodes(self._data)
            self._fill_adapters(self._data)

    @staticmethod
    def _columns(table: DataTable, spec: list[tuple[str, str, int]], flex: str, minimum: int) -> int:
        """Lay the columns out to the table's width; the `flex` one takes what is left."""
        # Before the first layout the table has no size yet; the screen's width less the
        # pane's border and padding is what it will get.
        available = table.scrollable_content_region.width or table.size.width or max(40, table.screen.size.width - 4)
        # Columns that do not fit go, last first, before the flexible one gets squeezed.
        while len(spec) > 2 and sum(w + 2 for _, k, w in spec if k != flex) + minimum + 4 > available:
            spec = spec[:-1]
        fixed = sum(width + 2 for _, key, width in spec if key != flex)
        flex_width = max(minimum, available - fixed - 4)
        table.clear(columns=True)
        for label, key, width in spec:
            table.add_column(label, key=key, width=flex_width if key == flex else width)
        return flex_width

    @staticmethod
    def _row(table: DataTable, cells: list[Text], key: str) -> None:
        table.add_row(*cells[: len(table.columns)], key=key)

    # --- loading ------------------------------------------------------------------

    def action_reload(self) -> None:
        self.reload()

    @work(exclusive=True, group="home-load")
    async def reload(self) -> None:
        store = self.looper.lab.store
        if store is None:
            return
        runs = await store.runs()
        run_id = self._run_id if any(r.id == self._run_id for r in runs) else (runs[0].id if runs else None)
        episodes = await store.episodes(run_id) if run_id else await store.episodes(limit=200)
        adapters = await list_adapters(store)
        if not self.is_attached:  # the lab closed while the queries ran
            return
        for pane in self.query(ExperimentsPane):
            pane.reload()
        self.post_message(self.Loaded(HomeData(runs, episodes, run_id, len(episodes), adapters)))

    def on_home_screen_loaded(self, message: Loaded) -> None:
        data = message.data
        self._data = data
        self._loaded_once = True
        empty = not data.runs and not data.episodes and not data.adapters
        self.set_class(empty, "-empty")
        if empty:
            ready = self._minilab_problem() is None
            self.query_one("#minilab" if ready else "#demo", Button).focus()
            return
        self._fill_runs(data)
        self._fill_episodes(data)
        self._fill_adapters(data)
        if isinstance(self.focused, Button) or self.focused is None:
            self.query_one("#runs", DataTable).focus()

    def _styled(self, text: str, style: str) -> Text:
        if not style:
            return Text(text)
        return Text(text, style=self.app.stylesheet.parse_style(style).rich_style)

    def _status_cell(self, status: str) -> Text:
        return self._styled(STATUS_GLYPH.get(status, "?"), STATUS_STYLE.get(status, ""))

    def _fill_runs(self, data: HomeData) -> None:
        table = self.query_one("#runs", DataTable)
        now = self.looper.clock()
        state = self.looper.lab.state
        keep = self._cursor_key(table)
        name_w = self._columns(
            table,
            [("", "status", 1), ("run", "run", 0), ("model", "model", 24), ("resolved", "resolved", 8),
             ("time", "time", 7), ("started", "started", 8)],
            "run",
            16,
        )
        for run in data.runs:
            status = run.status
            live = state.runs.get(run.id)
            if run.finished_at is not None:
                resolved = f"{run.resolved}/{run.total}"
                took = run.finished_at - run.started_at
            else:
                if live is not None:
                    done = [state.episodes[e] for e in live.episode_ids if state.episodes[e].finished]
                    resolved = f"{sum(e.status == 'resolved' for e in done)}/{run.n_tasks}"
                else:
                    resolved = f"?/{run.n_tasks}"
                took = now - run.started_at if status == "running" else None
            model_style = "$looper-scripted" if run.scripted else ""
            self._row(table, [
                self._status_cell(status),
                Text(ellipsize(run.name or run.id, name_w)),
                self._styled(ellipsize(run.model_label or run.model, 24), model_style),
                Text(resolved, justify="right"),
                Text(fmt_duration(took), justify="right"),
                Text(fmt_age(run.started_at, now), justify="right"),
            ], run.id)
        self._run_id = data.run_id
        wanted = data.run_id or keep
        if wanted is not None:
            index = next((i for i, r in enumerate(data.runs) if r.id == wanted), 0)
            table.move_cursor(row=index, animate=False)

    def _fill_episodes(self, data: HomeData) -> None:
        table = self.query_one("#episodes", DataTable)
        pane = self.query_one("#episodes-pane")
        now = self.looper.clock()
        pane.border_title = f"Episodes of {data.run_id}" if data.run_id else "Episodes"
        old_key = self._cursor_key(table)
        task_w = self._columns(
            table,
            [("", "status", 1), ("task", "task", 0), ("steps", "steps", 5), ("tokens", "tokens", 7),
             ("alarms", "alarms", 6), ("time", "time", 7), ("started", "started", 8), ("episode", "episode", 25)],
            "task",
            24,
        )
        self._episodes = {e.id: e for e in data.episodes}
        for ep in data.episodes:
            took = ep.duration_s if ep.finished_at is not None else (now - ep.started_at)
            task = ep.task_id if ep.parent_id is None else f"{ep.task_id} (fork@{ep.fork_step})"
            self._row(table, [
                self._status_cell(ep.status),
                Text(ellipsize(task, task_w)),
                Text(str(ep.steps), justify="right"),
                Text(fmt_tokens(ep.prompt_tokens + ep.completion_tokens), justify="right"),
                self._styled(str(ep.loop_alarms) if ep.loop_alarms else "", "$looper-alarm bold"),
                Text(fmt_duration(took), justify="right"),
                Text(fmt_age(ep.started_at, now), justify="right"),
                Text(ep.id, style="dim"),
            ], ep.id)
        if old_key in self._episodes:
            index = next(i for i, e in enumerate(data.episodes) if e.id == old_key)
            table.move_cursor(row=index, animate=False)

    def _fill_adapters(self, data: HomeData) -> None:
        self.set_class(bool(data.adapters), "-adapters")
        table = self.query_one("#adapters", DataTable)
        now = self.looper.clock()
        keep = self._cursor_key(table)
        base_w = self._columns(
            table,
            [("adapter", "adapter", 22), ("strategy", "strategy", 8), ("base model", "base", 0),
             ("samples", "samples", 7), ("val loss", "loss", 8), ("created", "created", 8)],
            "base",
            16,
        )
        self._adapters = {a.id: a for a in data.adapters}
        for rec in data.adapters:
            losses = [p.get("val_loss") for p in rec.curve if p.get("val_loss") is not None]
            self._row(table, [
                Text(ellipsize(rec.id, 22)),
                Text(rec.strategy),
                Text(ellipsize(rec.base_model, base_w)),
                Text(str(rec.data_stats.get("samples", "")), justify="right"),
                Text(f"{losses[-1]:.3f}" if losses else "—", justify="right"),
                Text(fmt_age(rec.created_at, now), justify="right"),
            ], rec.id)
        if keep in self._adapters:
            index = next(i for i, a in enumerate(data.adapters) if a.id == keep)
            table.move_cursor(row=index, animate=False)

    @on(DataTable.RowSelected, "#adapters")
    def _adapter_selected(self, event: DataTable.RowSelected) -> None:
        rec = self._adapters.get(event.row_key.value or "")
        if rec is not None:
            self.post_message(NewRun(model=f"mlx:{rec.base_model}@{rec.id}"))

    # --- live updates -------------------------------------------------------------

    def lab_changed(self, message: LabChanged) -> None:
        # Coalesce a burst of changes into one query a little later.
        if not self._reload_pending:
            self._reload_pending = True
            self.set_timer(RELOAD_DELAY_S, self._delayed_reload)

    def _delayed_reload(self) -> None:
        self._reload_pending = False
        self.reload()

    def on_screen_resume(self) -> None:
        if self._loaded_once:
            self.reload()

    # --- actions ------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#runs")
    def _run_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Where the cursor is now: a refill posts highlights for rows it passed through.
        run_id = self._cursor_key(self.query_one("#runs", DataTable))
        if run_id and run_id != self._run_id:
            self._run_id = run_id
            self.reload()

    @on(DataTable.RowSelected, "#runs")
    def _run_selected(self, event: DataTable.RowSelected) -> None:
        run_id = event.row_key.value
        live = self.looper.lab.state.runs.get(run_id or "")
        if live is not None and live.finished is None and live.episode_ids:
            self.post_message(ShowLive(list(live.episode_ids), title=f"run {run_id}"))
        else:
            self.query_one("#episodes", DataTable).focus()

    @on(DataTable.RowSelected, "#episodes")
    def _episode_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.post_message(OpenEpisode(event.row_key.value))

    @staticmethod
    def _cursor_key(table: DataTable) -> str | None:
        if not table.row_count or not 0 <= table.cursor_row < table.row_count:
            return None
        return table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value

    def _episode_under_cursor(self) -> str | None:
        return self._cursor_key(self.query_one("#episodes", DataTable))

    def action_history(self) -> None:
        episode_id = self._episode_under_cursor()
        if episode_id is None:
            self.notify("no episode to show yet", severity="warning")
            return
        self.post_message(ShowHistory(episode_id))

    def action_demo(self) -> None:
        self.post_message(StartDemo())

    def action_minilab(self) -> None:
        self.post_message(OpenMiniLab())

    @on(Button.Pressed, "#minilab")
    def _minilab_pressed(self) -> None:
        self.action_minilab()

    @on(Button.Pressed, "#demo")
    def _demo_pressed(self) -> None:
        self.action_demo()

    @on(Button.Pressed, "#new-run")
    def _new_run_pressed(self) -> None:
        self.post_message(NewRun())
