"""`f` in the history view: resume from here. A new episode starts with the history up to
this step (its observation included), the workspace rebuilt by re-running the recorded
calls, linked to its parent; optionally with another model or an edited system prompt."""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationError, field_validator
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea

from looper_engine.models.spec import checked_spec
from looper_engine.store.db import EpisodeRow
from looper_tui.lab import WATCHABLE_RATE


class ForkRequest(BaseModel):
    model: str
    rate: float = Field(WATCHABLE_RATE, ge=0)
    system_prompt: str | None = None

    @field_validator("model")
    @classmethod
    def _spec(cls, value: str) -> str:
        return checked_spec(value)


class ForkScreen(ModalScreen[ForkRequest | None]):
    CSS_PATH = "fork.tcss"
    BINDINGS = [
        Binding("ctrl+s", "fork", "Fork", priority=True),
        Binding("escape", "dismiss", "Cancel", priority=True),
    ]

    def __init__(self, parent: EpisodeRow, step: int, system_prompt: str) -> None:
        super().__init__()
        self.parent_row = parent
        self.step = step
        self.system_prompt = system_prompt

    def compose(self) -> ComposeResult:
        blink = getattr(self.app, "blink", True)
        with Vertical(id="fork-box") as box:
            box.border_title = f"Resume from step {self.step}"
            yield Static(
                Content.assemble(
                    "A new episode of ",
                    (self.parent_row.task_id, "bold"),
                    f" continues after step {self.step} of ",
                    (self.parent_row.id, "$text-muted"),
                    ": the history up to there (its output and observation kept), the workspace "
                    "rebuilt by re-running the recorded calls, linked to its parent.",
                ),
                id="fork-explain",
            )
            with Horizontal(classes="fork-row"):
                yield Label("model", classes="fork-label")
                model = Input(self.parent_row.model, id="fork-model", compact=True)
                model.cursor_blink = blink
                yield model
                yield Label("tokens/s", classes="fork-label")
                rate = Input(str(int(WATCHABLE_RATE)), id="fork-rate", type="number", compact=True)
                rate.cursor_blink = blink
                yield rate
            yield Label("system prompt (edit it to try a different instruction from here)", classes="fork-label")
            area = TextArea(self.system_prompt, id="fork-prompt", soft_wrap=True)
            area.cursor_blink = blink
            yield area
            yield Static("", id="fork-error")
            with Horizontal(id="fork-buttons"):
                yield Button("Fork (ctrl+s)", id="fork", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#fork", Button).focus()

    def action_fork(self) -> None:
        prompt = self.query_one("#fork-prompt", TextArea).text
        rate_text = self.query_one("#fork-rate", Input).value.strip() or "0"
        try:
            request = ForkRequest(
                model=self.query_one("#fork-model", Input).value,
                rate=float(rate_text),
                system_prompt=prompt if prompt != self.system_prompt else None,
            )
        except (ValidationError, ValueError) as exc:
            message = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else f"tokens/s: {exc}"
            error = self.query_one("#fork-error", Static)
            error.update(str(message).removeprefix("Value error, "))
            error.display = True
            return
        if request.system_prompt is not None and not request.system_prompt.strip():
            error = self.query_one("#fork-error", Static)
            error.update("the system prompt is empty")
            error.display = True
            return
        self.dismiss(request)

    @on(Button.Pressed, "#fork")
    def _fork_pressed(self) -> None:
        self.action_fork()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)
