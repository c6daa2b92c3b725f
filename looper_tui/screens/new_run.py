"""The new-run form: suite, task filter, model spec, concurrency, limits and the framework
switches. Bad input is said in one line under the form; nothing starts until it is right."""

from __future__ import annotations

from pydantic import ValidationError
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from looper_engine.config import FRAMEWORK_SWITCHES, AgentConfig
from looper_engine.errors import UserError
from looper_engine.sandbox import SANDBOX_MODES, resolve_mode
from looper_engine.tasks.suites import SUITES, load_suite, select_tasks
from looper_tui.lab import WATCHABLE_RATE, RunRequest

MODEL_HINT = "scripted:POLICY · ollama:MODEL · mlx:PATH[@ADAPTER] · openai:MODEL@URL"


def _field_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


class NewRunScreen(ModalScreen[RunRequest | None]):
    CSS_PATH = "new_run.tcss"
    BINDINGS = [
        Binding("ctrl+s", "start", "Start", priority=True),
        Binding("escape", "dismiss", "Cancel", priority=True),
    ]

    def __init__(self, model: str | None = None) -> None:
        super().__init__()
        #: The model spec to start from (an adapter chosen on the home screen).
        self.model = model or "scripted:oracle"

    def compose(self) -> ComposeResult:
        blink = getattr(self.app, "blink", True)
        defaults = AgentConfig()

        def field(widget: Input) -> Input:
            widget.cursor_blink = blink
            return widget

        with Vertical(id="new-run-box") as box:
            box.border_title = "New run"
            with VerticalScroll(id="new-run-form"):
                with Grid(id="new-run-grid"):
                    yield Label("suite")
                    yield Select([(s, s) for s in SUITES], value=SUITES[0], allow_blank=False, id="suite",
                                 compact=True)
                    yield Label("name")
                    yield field(Input(placeholder="optional", id="name", compact=True))
                    yield Label("tasks")
                    yield field(Input(placeholder="all tasks — or id globs: off_by_one/* wrong_operator/leap_year",
                                      id="tasks", classes="wide", compact=True))
                    yield Label("model")
                    yield field(Input(self.model, id="model", classes="wide", compact=True))
                    yield Label("")
                    yield Static(MODEL_HINT, classes="hint wide")
                    yield Label("tokens/s")
                    yield field(Input(str(int(WATCHABLE_RATE)), id="rate", type="number", compact=True,
                                      tooltip="scripted policies only; 0 = unthrottled"))
                    yield Label("concurrency")
                    yield field(Input("2", id="concurrency", type="integer", compact=True))
                    yield Label("max steps")
                    yield field(Input(str(defaults.max_steps), id="max-steps", type="integer", compact=True))
                    yield Label("token budget")
                    yield field(Input(str(defaults.token_budget), id="budget", type="integer", compact=True))
                    yield Label("sandbox")
                    yield Select([(m, m) for m in SANDBOX_MODES], value=defaults.sandbox, allow_blank=False,
                                 id="sandbox", compact=True,
                                 tooltip="none runs the model's commands unconfined (see README, Safety)")
                yield Static("Framework switches (ticked = the fix is on)", classes="section")
                with Grid(id="switches"):
                    for name in FRAMEWORK_SWITCHES:
                        description = AgentConfig.model_fields[name].description or ""
                        yield Checkbox(f"{name}: {description}", True, id=f"switch-{name}", compact=True)
            yield Static("", id="new-run-error")
            with Horizontal(id="new-run-buttons"):
                yield Button("Start (ctrl+s)", id="start", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#tasks", Input).focus()

    def _value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value.strip()

    def _int(self, widget_id: str, label: str) -> int | None:
        text = self._value(widget_id)
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            raise UserError(f"{label}: {text!r} is not a whole number") from None

    def build_request(self) -> RunRequest:
        """The form as a RunRequest; UserError, one line, for anything wrong."""
        rate_text = self._value("rate") or "0"
        try:
            rate = float(rate_text)
        except ValueError:
            raise UserError(f"tokens/s: {rate_text!r} is not a number") from None
        suite = str(self.query_one("#suite", Select).value)
        concurrency = self._int("concurrency", "concurrency")
        try:
            request = RunRequest(
                suite=suite,
                tasks=self._value("tasks").replace(",", " ").split(),
                model=self._value("model"),
                rate=rate,
                concurrency=1 if concurrency is None else concurrency,
                max_steps=self._int("max-steps", "max steps"),
                token_budget=self._int("budget", "token budget"),
                off=[n for n in FRAMEWORK_SWITCHES if not self.query_one(f"#switch-{n}", Checkbox).value],
                name=self._value("name"),
                sandbox=str(self.query_one("#sandbox", Select).value),
            )
        except ValidationError as exc:
            raise UserError(_field_error(exc)) from None
        # A pattern that matches nothing is an error before anything starts.
        select_tasks(load_suite(request.suite), request.tasks or None)
        # So is a sandbox that cannot start here: the form says why and how to fix it.
        resolve_mode(request.sandbox)
        return request

    def action_start(self) -> None:
        try:
            request = self.build_request()
        except UserError as exc:
            error = self.query_one("#new-run-error", Static)
            error.update(str(exc))
            error.display = True
            return
        self.dismiss(request)

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)
