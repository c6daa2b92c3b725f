"""An experiment's results: per arm the accuracy matrix as a heatmap, the transfer and
forgetting summary with intervals, base against the arm, the flip table task by task, and
the regression gate's verdict on every night.

Standalone: give it a database path (and an experiment name; default the newest) or results
already loaded. Loading runs in a worker thread (the bootstrap intervals take a moment), so
the screen stays responsive; `r` reloads while an experiment is still running.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from looper_engine.evaluation.results import (
    CL_METRICS,
    NO_INTERVAL,
    ArmResults,
    ExperimentResults,
    fmt_detectable,
    fmt_rate,
    load_results,
)
from looper_engine.store.db import Store
from looper_tui.widgets.key_footer import KeyFooter

#: Heatmap colours from 0% to 100% resolved (a red-to-green ramp readable on dark and light).
RAMP = ("#7f1d1d", "#9a3412", "#a16207", "#4d7c0f", "#15803d", "#166534")

CHANGE_STYLE = {
    "fixed": "bold green",
    "broken": "bold red",
    "same (solved)": "green",
    "same (unsolved)": "dim",
    "same (mixed)": "yellow",
}


def heat_colour(value: float) -> str:
    index = min(len(RAMP) - 1, max(0, int(value * (len(RAMP) - 1) + 0.5)))
    return RAMP[index]


def heatmap(results: ExperimentResults, arm: ArmResults) -> Group:
    """a[i][j] as coloured cells, with the zero-shot row z[j] under it."""
    n = len(arm.matrix)
    title = Text.assemble(
        (arm.arm, "bold"), ": a[i][j] = success on chunk j after learning through chunk i; z = zero-shot"
    )
    table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 1))
    table.add_column("after", justify="right", style="bold")
    for j in range(n):
        table.add_column(f"chunk {j + 1}", justify="center")

    def cell(value: float | None, counts: tuple[int, int] | None) -> Text:
        if value is None or counts is None:
            return Text("   ·   ", style="dim")
        label = f" {value:>4.0%} {counts[0]}/{counts[1]} "
        return Text(label, style=f"bold white on {heat_colour(value)}")

    for i, row in enumerate(arm.matrix):
        table.add_row(str(i + 1), *(cell(v, arm.counts[i][j]) for j, v in enumerate(row)))
    table.add_row(
        "z", *(cell(v, results.zero_shot_counts[j]) for j, v in enumerate(results.zero_shot))
    )
    return Group(title, table)


def _fmt_p(p: float | None) -> str:
    return "—" if p is None else f"{p:.3g}"


class ResultsScreen(Screen[None]):
    CSS_PATH = "results.tcss"
    BINDINGS = [
        Binding("r", "reload", "Reload"),
        Binding("escape,q", "close", "Close"),
    ]

    class Loaded(Message):
        def __init__(self, results: ExperimentResults | None, error: str = "") -> None:
            super().__init__()
            self.results = results
            self.error = error

    def __init__(
        self,
        db_path: Path | str | None = None,
        exp_id: str = "",
        *,
        results: ExperimentResults | None = None,
    ) -> None:
        super().__init__()
        self.db_path = Path(db_path) if db_path is not None else None
        self.exp_id = exp_id
        self.results = results

    def compose(self) -> ComposeResult:
        yield Static("Experiment results", id="results-title")
        yield Static("loading…", id="results-status")
        with VerticalScroll(id="results-overview"):
            yield Static(id="results-summary-title", classes="section-title")
            yield DataTable(id="results-summary", cursor_type="row", zebra_stripes=True)
        yield TabbedContent(id="results-arms")
        yield KeyFooter()

    def on_mount(self) -> None:
        summary = self.query_one("#results-summary", DataTable)
        summary.add_columns("arm", "final", "n", *(label for _, label in CL_METRICS), "vs base (p)")
        if self.results is not None:
            self.call_after_refresh(self._show, self.results)
        else:
            self.action_reload()

    def action_close(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
        else:
            self.app.exit()

    def action_reload(self) -> None:
        if self.db_path is None:
            return
        self.query_one("#results-status", Static).update("loading…")
        self._load()

    @work(thread=True, exclusive=True, group="results-load")
    def _load(self) -> None:
        assert self.db_path is not None
        path = self.db_path

        async def go() -> ExperimentResults:
            store = await Store.open(path, create=False)
            try:
                return await load_results(store, self.exp_id)
            finally:
                await store.close()

        try:
            results = asyncio.run(go())
        except Exception as exc:  # noqa: BLE001 - shown on the screen, never a crash
            self.post_message(self.Loaded(None, str(exc)))
            return
        self.post_message(self.Loaded(results))

    async def on_results_screen_loaded(self, message: Loaded) -> None:
        if message.results is None:
            self.query_one("#results-status", Static).update(Text(message.error, style="bold red"))
            return
        await self._show(message.results)

    async def _show(self, results: ExperimentResults) -> None:
        self.results = results
        self.exp_id = results.exp_id
        title = Text.assemble(("Experiment ", "bold"), (results.exp_id, "bold cyan"), f"  ({results.status})")
        self.query_one("#results-title", Static).update(title)
        status = (
            f"base model {results.model} · {sum(len(c) for c in results.chunks)} tasks in "
            f"{len(results.chunks)} chunks · {len(results.heldout)} held out · seeds "
            f"{', '.join(map(str, results.seeds))} · {results.counts.get('episodes', 0)} episodes"
        )
        line = Text(status)
        if results.scripted:
            line.append("  scripted policies: a demo, not a result", style="yellow")
        self.query_one("#results-status", Static).update(line)
        self.query_one("#results-summary-title", Static).update(
            f"Transfer and forgetting (95% jackknife intervals over tasks; † {NO_INTERVAL})"
        )
        summary = self.query_one("#results-summary", DataTable)
        summary.clear()
        for arm in results.arms:
            rr = arm.episodes.resolve_rate if arm.episodes else None
            final = fmt_rate(rr, design=False)
            n = "—" if rr is None else rr.design
            stream = next((c for c in arm.vs_base if c.scope == "stream"), None)
            vs = "—" if stream is None else f"{stream.diff:+.0%} (p {stream.p_value:.3g})"
            metrics = [str(arm.summary[k]) if arm.summary else "—" for k, _ in CL_METRICS]
            summary.add_row(arm.arm, final, n, *metrics, vs, key=arm.arm)
        # A fresh TabbedContent composed with its panes lays its tabs (and the underline
        # under the active one) out once, with every label in place.
        old = self.query_one("#results-arms", TabbedContent)
        tabs = TabbedContent(id="results-arms")
        for arm in results.arms:
            tabs.compose_add_child(self._arm_pane(results, arm))
        await old.remove()
        await self.mount(tabs, before=self.query_one(KeyFooter))

    def _arm_pane(self, results: ExperimentResults, arm: ArmResults) -> TabPane:
        flips = DataTable(classes="results-flips", cursor_type="row", zebra_stripes=True)
        flips.add_columns("task", "chunk", "base", "arm", "change")
        for f in arm.flips:
            flips.add_row(
                f.task_id,
                "held-out" if f.chunk < 0 else str(f.chunk + 1),
                f"{f.base_k}/{f.base_n}",
                f"{f.arm_k}/{f.arm_n}",
                Text(f.change, style=CHANGE_STYLE.get(f.change, "")),
            )
        gate = DataTable(classes="results-gate", cursor_type="row", zebra_stripes=True)
        gate.add_columns("seed", "night", "adopted", "n", "before", "candidate", "b", "c", "p", "verdict")
        for n in arm.nights:
            gate.add_row(
                str(n.seed),
                str(n.cycle + 1),
                (Text("yes", style="green") if n.testable else Text("yes (untested)", style="yellow"))
                if n.adopted else Text("no", style="bold red"),
                str(n.n),
                "—" if n.base_rate is None else f"{n.base_rate:.0%}",
                "—" if n.candidate_rate is None else f"{n.candidate_rate:.0%}",
                str(n.b),
                str(n.c),
                _fmt_p(n.p_value),
                n.reason,
            )
        comparisons = Text()
        for c in arm.vs_base:
            comparisons.append(
                f"{c.scope} ({c.design}): base {fmt_rate(c.base, design=False)} → arm {fmt_rate(c.arm, design=False)}, "
                f"difference {c.diff:+.0%} [{c.diff_lo:+.0%}, {c.diff_hi:+.0%}], "
                f"tasks better/worse {c.better}/{c.worse}, sign-flip p={c.p_value:.3g}, "
                f"detectable {fmt_detectable(c)}\n"
            )
        if not arm.complete:
            comparisons.append("the matrix is not complete yet: metrics that need all of it are left out\n",
                               style="yellow")
        gate_title = "Regression gate" if arm.nights else "Regression gate: this arm learns nothing"
        return TabPane(
            arm.arm,
            VerticalScroll(
                Static(heatmap(results, arm), classes="results-heatmap"),
                Static(comparisons, classes="results-comparison"),
                Static("Flip table (zero-shot → this arm's final stage)", classes="section-title"),
                flips,
                Static(gate_title, classes="section-title"),
                gate,
            ),
            id=f"arm-{_dom_id(arm.arm)}",
        )


def _dom_id(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


__all__ = ["ResultsScreen", "heat_colour", "heatmap"]
