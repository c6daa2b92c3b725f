"""A problem the lab cannot work around (the database cannot be opened), said in one clear
message on screen instead of a traceback."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Static

from looper_tui.widgets.key_footer import KeyFooter


class ErrorScreen(Screen[None]):
    CSS_PATH = "error.tcss"
    BINDINGS = [
        Binding("q", "app.quit", "Quit"),
        Binding("escape", "app.quit", "Quit", show=False),
    ]

    def __init__(self, message: str, *, title: str = "Something went wrong", hint: str | None = None) -> None:
        super().__init__()
        self.message = message
        self.heading = title
        self.hint = hint or (
            "Start Looper with --db pointing at a database file (or at a new file in an "
            "existing folder, which is created). Press q to quit."
        )

    def compose(self) -> ComposeResult:
        with Vertical(id="error-box"):
            yield Static(self.heading, id="error-title")
            yield Static(self.message, id="error-message", markup=False)
            yield Static(self.hint, id="error-hint", markup=False)
        yield KeyFooter()
