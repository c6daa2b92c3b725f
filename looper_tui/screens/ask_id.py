"""Open a stored episode by id (or a unique prefix), from the command palette."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class AskIdScreen(ModalScreen[str | None]):
    CSS_PATH = "ask_id.tcss"
    BINDINGS = [Binding("escape", "dismiss", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="ask-box") as box:
            box.border_title = "Open an episode"
            yield Label("episode id or a unique prefix (enter opens, escape cancels)")
            field = Input(placeholder="ep-…", id="ask-id")
            field.cursor_blink = getattr(self.app, "blink", True)
            yield field

    @on(Input.Submitted, "#ask-id")
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)
