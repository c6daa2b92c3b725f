"""Context tokens used against the budget, and how many turns pruning has elided."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from looper_tui.tcss import beside


class BudgetGauge(Widget):
    DEFAULT_CSS = beside(__file__)

    used: reactive[int] = reactive(0)
    budget: reactive[int] = reactive(0)
    pruned: reactive[int] = reactive(0)

    def show(self, used: int, budget: int, pruned: int) -> None:
        self.used, self.budget, self.pruned = used, budget, pruned

    def render(self) -> Content:
        used, budget = self.used, self.budget
        if budget <= 0:
            return Content("context —").stylize("$text-muted")
        share = used / budget
        style = "$success" if share < 0.7 else "$warning" if share < 0.9 else "$error"
        label = f"context {used:,}/{budget:,} "
        tail = f" {share:4.0%}"
        if self.pruned:
            tail += f" · {self.pruned} pruned"
        bar_w = max(4, self.size.width - len(label) - len(tail))
        filled = min(bar_w, round(bar_w * min(share, 1.0)))
        return Content.assemble(
            (label, "$text-muted"),
            ("█" * filled, style),
            ("░" * (bar_w - filled), "$text-muted 40%"),
            (tail, style if share >= 0.7 else "$text-muted"),
        )
