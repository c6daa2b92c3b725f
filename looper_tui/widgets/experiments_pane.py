"""The experiments in the lab's database, on the home screen: enter on one opens its
results. Hidden while the database holds none, so a lab without experiments looks as before."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable

from looper_engine.store.experiments import ExperimentRow, list_experiments
from looper_tui.appref import lab_context
from looper_tui.format import fmt_age
from looper_tui.messages import ShowResults
from looper_tui.tcss import beside


class ExperimentsPane(Vertical):
    DEFAULT_CSS = beside(__file__)

    def compose(self) -> ComposeResult:
        self.border_title = "Experiments"
        self.border_subtitle = "enter: results"
        yield DataTable(id="experiments", cursor_type="row")

    def on_mount(self) -> None:
        self.display = False
        table = self.query_one(DataTable)
        table.add_column("experiment", key="name")
        table.add_column("arms", key="arms")
        table.add_column("status", key="status")
        table.add_column("updated", key="updated")
        self.reload()

    @work(exclusive=True, group="experiments-load")
    async def reload(self) -> None:
        store = lab_context(self).lab.store
        if store is None:
            return
        experiments = await list_experiments(store)
        if self.is_attached:  # the lab may have closed while the query ran
            self._show(experiments)

    def _show(self, experiments: list[ExperimentRow]) -> None:
        self.display = bool(experiments)
        table = self.query_one(DataTable)
        now = lab_context(self).clock()
        table.clear()
        for exp in experiments:
            arms = ", ".join(str(a.get("name", "?")) for a in exp.spec.get("arms", []))
            table.add_row(
                Text(exp.name or exp.id), Text(arms, style="dim"), Text(exp.status),
                Text(fmt_age(exp.updated_at, now), justify="right"), key=exp.id,
            )

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.post_message(ShowResults(event.row_key.value))
