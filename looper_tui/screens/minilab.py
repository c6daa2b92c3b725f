"""Watch a model learn: the mini-lab base model runs a round of task-world episodes (its
tokens stream here with their rate), `t` teaches it the family it fails most, and the next
round, on the same tasks, shows what changed: before and after, family by family. With the
default routing lesson a taught family runs on its own adapter and the rest on the base model.

The engine side is looper_engine.evaluation.minilab; every round and every lesson is an
ordinary recorded run, so each episode opens in the history like any other.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Static

from looper_engine.errors import UserError
from looper_engine.evaluation import minilab
from looper_engine.evaluation.minilab import FamilyScore, MiniLabSettings
from looper_engine.models.registry import create_backend
from looper_tui.appref import LabContext, lab_context
from looper_tui.lab import RunRequest
from looper_tui.messages import LabChanged
from looper_tui.widgets.key_footer import KeyFooter

if TYPE_CHECKING:
    from looper_engine.agent.runner import Runner
    from looper_engine.consolidation.job import ConsolidationJob
    from looper_engine.consolidation.registry import AdapterRecord
    from looper_engine.tasks.model import Task

#: Lines of the streaming reply kept on screen.
STREAM_LINES = 14
PROGRESS_S = 0.5


def _cell(score: FamilyScore | None) -> Text:
    if score is None or not score.total:
        return Text("—", justify="right", style="dim")
    style = "bold green" if score.resolved == score.total else ("bold red" if score.resolved == 0 else "yellow")
    return Text(f"{score.resolved}/{score.total}", justify="right", style=style)


class MiniLabScreen(Screen[None]):
    CSS_PATH = "minilab.tcss"
    BINDINGS = [
        Binding("r", "run_round", "Run a round"),
        Binding("t", "teach", "Teach a failed family"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, settings: MiniLabSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or MiniLabSettings()
        self.families: list[str] = []
        self.family_of: dict[str, str] = {}
        self.before: dict[str, FamilyScore] = {}
        self.after: dict[str, FamilyScore] = {}
        self.adapter: AdapterRecord | None = None
        self.routes: minilab.Routes = {}
        self.taught: list[str] = []
        self.runner: Runner | None = None
        self.job: ConsolidationJob | None = None
        self.busy = ""
        self.rounds = 0
        self.tasks: list[Task] = []

    @property
    def looper(self) -> LabContext:
        return lab_context(self)

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="minilab-title")
        with Horizontal(id="minilab-body"):
            with Vertical(id="scores-pane") as scores:
                scores.border_title = "Results: before and after"
                yield DataTable(id="scores", cursor_type="row", zebra_stripes=False)
            with Vertical(id="stream-pane") as stream:
                stream.border_title = "The model, live"
                yield Static("", id="stream-task")
                yield Static("", id="stream-text")
                yield Static("", id="stream-rate")
        yield Static("", id="minilab-status")
        yield KeyFooter()

    def _title(self) -> Content:
        return Content.assemble(
            ("Watch a model learn", "bold $accent"),
            ("  ·  ", "$text-muted"),
            (self.settings.model, "bold"),
            ("  ·  a real model from random weights, trained here on the task world", "$text-muted"),
        )

    def on_mount(self) -> None:
        table = self.query_one("#scores", DataTable)
        for label, key, width in (("family", "family", 16), ("before", "before", 7), ("after", "after", 7)):
            table.add_column(label, key=key, width=width)
        problem = minilab.model_problem(self.settings)
        if problem is not None:
            self._status(problem, "bold $error")
            return
        self._prepare()

    # --- rounds -------------------------------------------------------------------

    @work(exclusive=True, group="minilab-prepare")
    async def _prepare(self) -> None:
        self.busy = "preparing"
        self._status("generating the round's task-world instances…")
        try:
            tasks = await asyncio.to_thread(minilab.round_tasks, self.settings)
            self.families = minilab.families(self.settings)
        except UserError as exc:
            self.busy = ""
            self._status(str(exc), "bold $error")
            return
        self.tasks = tasks
        self.family_of = {t.id: t.family for t in tasks}
        self.busy = ""
        self._fill()
        self._status(
            f"{len(tasks)} episodes, {self.settings.per_family} per family. Press r to run the round."
        )

    def action_run_round(self) -> None:
        if self.busy:
            self.notify(f"busy: {self.busy}", severity="warning")
            return
        if not self.family_of:
            return
        self._run_round()

    @work(exclusive=True, group="minilab-run")
    async def _run_round(self) -> None:
        lab = self.looper.lab
        label = "after" if self.routes else "before"
        groups = minilab.round_groups(self.settings, self.tasks, self.routes)
        self.busy = "running a round"
        self.rounds += 1
        outcomes: list[tuple[str, bool]] = []
        try:
            for spec, tasks in groups:
                families = sorted({t.family for t in tasks})
                part = f" · {', '.join(families)}" if len(groups) > 1 else ""
                self._status(f"round {self.rounds} ({label}){part}: {spec}…")
                request = RunRequest(model="scripted:oracle", concurrency=self.settings.concurrency,
                                     name=f"mini-lab round {self.rounds} ({label}){part}")
                runner = lab.prepare_run(request, tasks=tasks, backend=create_backend(spec),
                                         config=minilab.agent_config(self.settings), suite="world")
                self.runner = runner
                result = await lab.run(runner)
                outcomes.extend((e.task_id, e.resolved) for e in result.episodes)
        except UserError as exc:
            self.busy = ""
            self._status(str(exc), "bold $error")
            return
        finally:
            self.runner = None
        got = minilab.scores(outcomes, self.family_of)
        if label == "before":
            self.before = got
        else:
            self.after = got
        self.busy = ""
        self._fill()
        self._round_done(label, sum(ok for _, ok in outcomes), len(outcomes))

    def _round_done(self, label: str, resolved: int, total: int) -> None:
        head = f"round {self.rounds} ({label}): {resolved}/{total} resolved."
        if label == "after" and self.taught:
            fam = self.taught[-1]
            b, a = self.before.get(fam), self.after.get(fam)
            if b is not None and a is not None:
                head += f" {fam}: {b.resolved}/{b.total} before, {a.resolved}/{a.total} after."
        nxt = minilab.family_to_teach(self.after or self.before, set(self.taught))
        tail = f" Press t to teach it {nxt}." if nxt else " It solves every family here."
        self._status(head + tail)

    # --- teaching -----------------------------------------------------------------

    def action_teach(self) -> None:
        if self.busy:
            self.notify(f"busy: {self.busy}", severity="warning")
            return
        if not self.before:
            self.notify("run a round first (r): it shows which families the model fails", severity="warning")
            return
        family = minilab.family_to_teach(self.after or self.before, set(self.taught))
        if family is None:
            self.notify("it already solves every family here", severity="information")
            return
        self._teach(family)

    @work(exclusive=True, group="minilab-teach")
    async def _teach(self, family: str) -> None:
        lab = self.looper.lab
        self.busy = f"teaching {family}"
        self._status(f"teaching {family}: the oracle solves lesson tasks, recorded as a run…")

        def got_job(job: ConsolidationJob) -> None:
            self.job = job
            self._status(f"teaching {family}: training on the lesson ({job.config.fine_tune_type})…")

        timer = self.set_interval(PROGRESS_S, lambda: self._progress(family))
        try:
            store = lab.require_store()
            record = await minilab.teach(
                store, lab.bus, self.settings, family,
                adapters_dir=self.looper.adapters_dir, workspace_parent=lab.workspace_parent, on_job=got_job,
                flush=lab.writer.flush if lab.writer is not None else None,
                parent=self.adapter.id if self.adapter is not None else None,
            )
            if record is not None:
                self.routes = minilab.routes_after(self.settings, self.routes, family, record)
        except UserError as exc:
            self._status(f"teaching {family} failed: {exc}", "bold $error")
            return
        finally:
            timer.stop()
            self.job = None
            self.busy = ""
        if record is None:
            self._status(f"teaching {family} was cancelled")
            return
        self.adapter = record
        self.taught.append(family)
        seconds = record.metrics.get("seconds") or 0.0
        how = (
            f"{', '.join(self.taught)} on {'its' if len(self.taught) == 1 else 'their'} adapter, the rest on the base model"
            if self.settings.teach_strategy == "routing"
            else "every family on it"
        )
        self._status(
            f"taught {family}: adapter {record.id} ({record.data_stats.get('samples', '?')} samples, "
            f"{seconds:.0f} s). Press r to rerun the same round: {how}."
        )

    def _progress(self, family: str) -> None:
        job = self.job
        if job is None or job.last is None:
            return
        p = job.last
        loss = p.val_loss if p.val_loss is not None else p.train_loss
        parts = [f"teaching {family}: step {p.iteration}/{p.iterations}"]
        if loss is not None:
            parts.append(f"loss {loss:.3f}")
        if p.tokens_per_second:
            parts.append(f"{p.tokens_per_second:,.0f} tok/s")
        if p.eta_s is not None:
            parts.append(f"{p.eta_s:.0f} s left")
        self._status(" · ".join(parts))

    # --- drawing ------------------------------------------------------------------

    def _fill(self) -> None:
        table = self.query_one("#scores", DataTable)
        table.clear()
        for fam in self.families:
            mark = " ★" if fam in self.taught else ""
            table.add_row(Text(fam + mark), _cell(self.before.get(fam)), _cell(self.after.get(fam)), key=fam)

    def _status(self, text: str, style: str = "") -> None:
        self.query_one("#minilab-status", Static).update(Content.styled(text, style) if style else text)

    def lab_changed(self, message: LabChanged) -> None:
        runner = self.runner
        if runner is None:
            return
        state = self.looper.lab.state
        live = [state.episodes.get(e.id) for e in runner.episodes]
        running = [e for e in live if e is not None and e.started_ts is not None and e.finished is None]
        if not running:
            return
        ep = running[0]
        # The newest reply with text in it: a step that just began has none yet.
        text = next((s.output.strip() for s in reversed(ep.steps) if s.output.strip()), "")
        lines = [line for line in text.splitlines() if line.strip()][-STREAM_LINES:]
        self.query_one("#stream-task", Static).update(
            Content.assemble((ep.task_id, "bold"), (f"  step {ep.current_step}", "$text-muted"))
        )
        self.query_one("#stream-text", Static).update(Text("\n".join(lines)))
        rate = ep.tokens_per_second()
        self.query_one("#stream-rate", Static).update(
            Content.styled(f"{rate:,.0f} tok/s" if rate is not None else "— tok/s", "bold $accent")
        )

    def action_back(self) -> None:
        if self.runner is not None:
            self.runner.cancel()
        if self.job is not None:
            self.job.cancel()
        self.dismiss(None)
