"""`t`: the training screen is not built yet. The binding is kept and this says what it
will do, so a user knows where consolidation will live."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

TEXT = Content.assemble(
    ("Training is coming to this screen.\n\n", "bold"),
    "From here you will consolidate the episodes recorded in this lab into a LoRA adapter:\n\n",
    ("  1. pick the data", "bold $primary"),
    " — which runs and episodes (resolved only, or failures too), and how many\n",
    ("  2. pick a strategy", "bold $primary"),
    " — how trajectories become training examples and how the adapter is trained\n",
    ("  3. train", "bold $primary"),
    " — a LoRA adapter with mlx-lm, its loss curve live, then base vs adapter on the same tasks\n\n",
    "Training examples are built by the same prompt builder the agent uses, so the format a "
    "model is trained on is the one it runs with.\n\n",
    ("Nothing is trained yet. escape closes this.", "$text-muted"),
)


class TrainingScreen(ModalScreen[None]):
    CSS_PATH = "training.tcss"
    BINDINGS = [Binding("escape,t,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="training-box") as box:
            box.border_title = "Training"
            yield Static(TEXT, id="training-text")
