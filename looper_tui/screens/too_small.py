"""Shown over everything while the terminal is too small to draw the lab. Runs keep going
underneath; enlarging the window brings back the screen that was there."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.containers import Center, Middle
from textual.screen import Screen
from textual.widgets import Static


class TooSmallScreen(Screen[None]):
    CSS_PATH = "too_small.tcss"

    def __init__(self, min_width: int, min_height: int) -> None:
        super().__init__()
        self.min_width = min_width
        self.min_height = min_height

    def compose(self) -> ComposeResult:
        with Middle(), Center():
            yield Static(self._text(), id="too-small-text")

    def _text(self) -> str:
        width, height = self.app.size
        return (
            f"The terminal is {width}×{height}.\n"
            f"Looper needs at least {self.min_width}×{self.min_height}.\n"
            "Please enlarge the window.\n"
            "Nothing is lost: runs keep going.\n"
            "(ctrl+q quits)"
        )

    def on_resize(self, event: events.Resize) -> None:
        self.query_one("#too-small-text", Static).update(self._text())
