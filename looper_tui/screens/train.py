"""`t`: consolidate the lab's episodes into a LoRA adapter.

Pick the base model, the data selection and the strategy; check the data (stats and the
format check) before anything trains; start; watch the progress bar and the train and
validation loss; cancel. When training ends the adapter is in the registry and the lab
home, and its spec (`mlx:PATH@ID`) is shown to run it with.
"""

from __future__ import annotations

import os
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Input, Label, ProgressBar, Select, Sparkline, Static, Switch

from looper_engine.consolidation.job import ConsolidationJob, resolve_model_path
from looper_engine.consolidation.strategies import STRATEGIES
from looper_engine.consolidation.synth import Dataset, Selection
from looper_engine.errors import UserError
from looper_engine.runtime.blas import BlasInfo, blas_info
from looper_tui.messages import AdapterTrained
from looper_tui.widgets.key_footer import KeyFooter

DEFAULT_MODEL_ENV = "LOOPER_MLX_MODEL"
TINY_DEFAULT = Path("models/tiny")


def default_model() -> str:
    return os.environ.get(DEFAULT_MODEL_ENV, str(TINY_DEFAULT))


class TrainScreen(Screen[None]):
    CSS_PATH = "train.tcss"
    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("c", "cancel_training", "Cancel training"),
        Binding("ctrl+s", "start", "Start", show=True),
    ]

    def __init__(self, lab, adapters_dir: Path = Path("adapters")) -> None:  # noqa: ANN001 - Lab
        super().__init__()
        self.lab = lab
        self.adapters_dir = adapters_dir
        self.job: ConsolidationJob | None = None
        self.dataset: Dataset | None = None
        self._shown_points = 0
        self._blas: BlasInfo | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="train-form"):
            yield Label("Train an adapter from this lab's episodes", id="train-title")
            with Horizontal(classes="row"):
                yield Label("base model (MLX folder)", classes="label")
                yield Input(default_model(), id="model", placeholder="models/tiny or mlx:PATH")
                yield Button("Build tiny model", id="tiny")
            with Horizontal(classes="row"):
                yield Label("strategy", classes="label")
                yield Select([(s, s) for s in STRATEGIES], value="naive", allow_blank=False, id="strategy")
            with Horizontal(classes="row"):
                yield Label("resolved episodes only", classes="label")
                yield Switch(True, id="resolved")
                yield Label("families (comma)", classes="label short")
                yield Input("", id="families", placeholder="all")
            with Horizontal(classes="row"):
                yield Label("iterations", classes="label")
                yield Input("50", id="iters", type="integer")
                yield Label("rank", classes="label short")
                yield Input("16", id="rank", type="integer")
                yield Label("learning rate", classes="label short")
                yield Input("3e-4", id="lr")
            with Horizontal(classes="row buttons"):
                yield Button("Check data", id="check", variant="primary")
                yield Button("Start training", id="start", variant="success", disabled=True)
                yield Button("Cancel", id="cancel", variant="error", disabled=True)
            yield Static("Check the data first: its stats and the format check appear here.", id="stats")
            with Vertical(id="progress-box"):
                yield ProgressBar(total=50, show_eta=True, id="progress")
                yield Static("", id="progress-text")
                yield Label("train loss", classes="chart-label")
                yield Sparkline([], id="train-loss")
                yield Label("validation loss", classes="chart-label")
                yield Sparkline([], id="val-loss")
            yield Static("", id="result")
        yield KeyFooter()

    # --- helpers ------------------------------------------------------------------

    def _selection(self) -> Selection:
        families = [f.strip() for f in self.query_one("#families", Input).value.split(",") if f.strip()]
        return Selection(resolved_only=self.query_one("#resolved", Switch).value, families=families)

    def _train_config(self):  # noqa: ANN202
        from looper_engine.consolidation.train import TrainConfig

        try:
            return TrainConfig(
                iters=int(self.query_one("#iters", Input).value or 50),
                rank=int(self.query_one("#rank", Input).value or 16),
                learning_rate=float(self.query_one("#lr", Input).value or 3e-4),
                steps_per_report=1,
                steps_per_eval=5,
            )
        except (ValueError, TypeError) as exc:
            raise UserError(f"bad training setting: {str(exc).splitlines()[-1]}") from exc

    def _say(self, widget_id: str, text: str, error: bool = False) -> None:
        w = self.query_one(f"#{widget_id}", Static)
        w.update(text)
        w.set_class(error, "error")

    def _new_job(self) -> ConsolidationJob:
        model = self.query_one("#model", Input).value.strip()
        resolve_model_path(model)
        return ConsolidationJob(
            self.lab.require_store(),
            self.lab.bus,
            model=model,
            strategy=str(self.query_one("#strategy", Select).value),
            train_config=self._train_config(),
            adapters_dir=self.adapters_dir,
            selection=self._selection(),
        )

    # --- actions ------------------------------------------------------------------

    @on(Button.Pressed, "#tiny")
    def _build_tiny(self) -> None:
        self.build_tiny()

    @work(exclusive=True, group="tiny", exit_on_error=False)
    async def build_tiny(self) -> None:
        from looper_engine.models.tiny import build_tiny_model
        from looper_engine.runtime.mlx_threads import to_mlx_thread

        try:
            path = await to_mlx_thread(build_tiny_model, TINY_DEFAULT)
        except UserError as exc:
            self._say("stats", str(exc), error=True)
            return
        self.query_one("#model", Input).value = str(path)
        self.notify(f"tiny model at {path} (random weights: its output is noise)")

    @on(Button.Pressed, "#check")
    def action_check(self) -> None:
        self.check_data()

    @work(exclusive=True, group="train", exit_on_error=False)
    async def check_data(self) -> None:
        self.query_one("#start", Button).disabled = True
        try:
            job = self._new_job()
            data = await job.prepare()
        except UserError as exc:
            self._say("stats", str(exc), error=True)
            return
        self.job, self.dataset = job, data
        ok = data.stats.format_ok
        self._say("stats", "\n".join(data.stats.lines()), error=not ok)
        self.query_one("#start", Button).disabled = not ok

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        if self.job is None or self.dataset is None:
            self._say("stats", "check the data before starting", error=True)
            return
        self.train()

    @work(exclusive=True, group="train", exit_on_error=False)
    async def train(self) -> None:
        assert self.job is not None
        job = self.job
        self.query_one("#start", Button).disabled = True
        self.query_one("#check", Button).disabled = True
        self.query_one("#cancel", Button).disabled = False
        self.query_one("#progress", ProgressBar).update(total=job.config.iters, progress=0)
        self._blas = blas_info()
        self.query_one("#progress-text", Static).update(self._blas_text("starting"))
        timer = self.set_interval(0.25, self._refresh_progress)
        try:
            record = await job.run()
        except UserError as exc:
            self._say("result", str(exc), error=True)
            record = None
        except Exception as exc:  # noqa: BLE001 - shown on screen, never a traceback
            self._say("result", f"training failed: {type(exc).__name__}: {exc}", error=True)
            record = None
        finally:
            timer.stop()
            self._refresh_progress()
            self.query_one("#cancel", Button).disabled = True
            self.query_one("#check", Button).disabled = False
            self.job = None
        if record is not None:
            spec = f"mlx:{resolve_model_path(self.query_one('#model', Input).value.strip())}@{record.id}"
            self._say("result", f"adapter {record.id} registered at {record.path}\nrun it with: {spec}")
            self.notify(f"adapter {record.id} is ready")
            self.app.post_message(AdapterTrained(record.id))
        elif job.cancel_event.is_set():
            self._say("result", "training cancelled; no adapter written")

    def _refresh_progress(self) -> None:
        job = self.job
        if job is None or job.last is None:
            return
        ev = job.last
        self.query_one("#progress", ProgressBar).update(total=ev.iterations, progress=ev.iteration)
        parts = [f"iteration {ev.iteration}/{ev.iterations}"]
        if ev.train_loss is not None:
            parts.append(f"train loss {ev.train_loss:.3f}")
        if ev.val_loss is not None:
            parts.append(f"val loss {ev.val_loss:.3f}")
        if ev.tokens_per_second:
            parts.append(f"{ev.tokens_per_second:.0f} tok/s")
        if ev.peak_memory_gb:
            parts.append(f"peak {ev.peak_memory_gb:.2f} GB")
        self.query_one("#progress-text", Static).update(self._blas_text("  ·  ".join(parts)))
        train = [p["train_loss"] for p in job.curve if p["train_loss"] is not None]
        val = [p["val_loss"] for p in job.curve if p["val_loss"] is not None]
        self.query_one("#train-loss", Sparkline).data = train
        self.query_one("#val-loss", Sparkline).data = val

    def _blas_text(self, line: str) -> str:
        """The progress line with the BLAS training runs on, and, when it is the slow
        reference BLAS, how much faster a better one would be."""
        blas = self._blas or blas_info()
        text = f"{line}  ·  BLAS: {blas.summary()}"
        advice = blas.advice()
        return f"{text}\n{advice}" if advice else text

    @on(Button.Pressed, "#cancel")
    def action_cancel_training(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self._say("result", "cancelling after the current step…")

    def action_close(self) -> None:
        self.dismiss()

