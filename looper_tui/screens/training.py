"""`t` where the skill layer cannot run: mlx-lm is not installed. Says what training does
and how to get it, instead of failing."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static


def _text(missing: str) -> Content:
    return Content.assemble(
        ("Training needs mlx-lm, which is not installed here", "bold"),
        (f" (missing: {missing}).\n\n", "$text-muted"),
        "Training consolidates the episodes recorded in this lab into a LoRA adapter: pick the "
        "data and a strategy, check the data's format, then train with mlx-lm and watch the loss.\n\n",
        "Install it with ",
        ("pip install -e '.[mlx]'", "bold $primary"),
        " (on Linux it brings mlx[cpu]), then press t again.\n\n",
        ("escape closes this.", "$text-muted"),
    )


class TrainingScreen(ModalScreen[None]):
    CSS_PATH = "training.tcss"
    BINDINGS = [Binding("escape,t,q", "dismiss", "Close")]

    def __init__(self, missing: str = "mlx_lm") -> None:
        super().__init__()
        self.missing = missing

    def compose(self) -> ComposeResult:
        with Vertical(id="training-box") as box:
            box.border_title = "Training"
            yield Static(_text(self.missing), id="training-text")
