"""LoRA training with mlx-lm, driven from Python.

`train_adapter` loads a model, turns its linear layers into LoRA layers
(`mlx_lm.tuner.utils.linear_to_lora_layers`), tokenizes chat rows with mlx-lm's own
`ChatDataset` and runs mlx-lm's `trainer.train` with our batch iterator, loss and
callback. What we add around it:

- progress reports (`TrainProgressInfo`) with loss, speed, ETA and peak memory;
- cancellation between any two steps, keeping every checkpoint written so far;
- checkpoints (adapter weights, Adam state, the curve so far) every `save_every` steps,
  from which `resume_from` continues with the same iteration numbers and batch order;
- the final adapter written atomically in mlx-lm's layout (see adapter_files);
- nothing printed: mlx-lm's training UI is a rich Live display on a shared console; it is
  silenced for the duration instead of swapping `sys.stdout`, which is process-wide and
  would also swallow what other threads (a TUI, a progress callback) print meanwhile.

Rows are `{"messages": [...], "meta": {...}}`; `meta` (the task family, the episode...)
is Looper's and is stripped before mlx-lm sees a row. With `mask_prompt` the loss covers
the last message of each row, which must be the assistant's (mlx-lm's ChatDataset
semantics: one row per assistant turn, its context as the prompt).

`train_adapter` is a short composition of its parts, each in its own section below: the
request checked (`_check_request`) and the model loaded (`_load_model`), data preparation
(`_prepare_data`), the training run with its progress reports (`_TrainingRun`) and the
adapter writer (`_write_adapter`).

Blocking: call it from a worker thread (`asyncio.to_thread`). One training runs at a
time per process (a lock), because mlx's random state and compile cache are global.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from looper_engine.consolidation.adapter_files import (
    ADAPTER_WEIGHTS,
    AdapterConfig,
    LoraParameters,
    holds_adapter_files,
    load_adapter_weights,
    read_adapter_config,
    write_adapter_atomically,
)
from looper_engine.errors import UserError
from looper_engine.events import TrainProgress

_TRAIN_LOCK = threading.Lock()

CHECKPOINTS_DIR = "checkpoints"
_OPTIMIZER_FILE = "optimizer.safetensors"
_STATE_FILE = "state.json"
_ROW_KEYS = ("messages", "tools")


class TrainConfig(BaseModel):
    """LoRA hyperparameters and the training schedule.

    `fine_tune_type = "full"` trains the model's own weights instead of LoRA layers: every
    weight when `num_layers` is -1 (embeddings and norms included), else the last
    `num_layers` blocks. The result is still an adapter folder, in mlx-lm's layout for a
    full fine-tune (`fine_tune_type: "full"` in adapter_config.json, the trained weights in
    adapters.safetensors), so `mlx_lm.load(model, adapter_path=DIR)`, `mlx:PATH@ID` and
    the registry treat it like any adapter; the LoRA settings are recorded but unused."""

    model_config = ConfigDict(extra="forbid")

    fine_tune_type: Literal["lora", "full"] = Field("lora", description="LoRA layers, or the full weights")
    rank: int = Field(16, ge=1, description="LoRA rank")
    scale: float = Field(20.0, gt=0, description="LoRA scale (mlx-lm's name; not alpha)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    num_layers: int = Field(-1, description="transformer blocks to adapt, from the last; -1 = all")
    keys: list[str] | None = Field(None, description="module names to adapt; None = every linear layer")
    learning_rate: float = Field(3e-4, gt=0)
    warmup: int = Field(
        0, ge=0, description="steps of linear warmup to learning_rate: a fresh Adam's first steps are its largest"
    )
    iters: int = Field(50, ge=1, description="total optimizer steps (a resumed run counts from zero)")
    batch_size: int = Field(4, ge=1)
    max_seq_length: int = Field(2048, ge=8, description="longer samples are truncated")
    steps_per_report: int = Field(5, ge=1)
    steps_per_eval: int = Field(10, ge=1)
    val_batches: int = Field(-1, ge=-1, description="validation batches per evaluation; -1 = all")
    save_every: int = Field(10, ge=1, description="steps between checkpoints")
    seed: int = 0
    mask_prompt: bool = Field(True, description="loss only on the final assistant message")
    grad_checkpoint: bool = False

    @field_validator("num_layers")
    @classmethod
    def _layers(cls, v: int) -> int:
        if v == 0 or v < -1:
            raise ValueError("num_layers must be -1 (all) or a positive count")
        return v

    def lora_parameters(self) -> LoraParameters:
        return LoraParameters(rank=self.rank, scale=self.scale, dropout=self.dropout, keys=self.keys)


class CurvePoint(BaseModel):
    iteration: int
    train_loss: float | None = None
    val_loss: float | None = None


class TrainProgressInfo(BaseModel):
    """One progress report, after a training-loss report or an evaluation."""

    iteration: int
    iterations: int
    train_loss: float | None = None
    val_loss: float | None = None
    learning_rate: float | None = None
    tokens_per_second: float | None = None
    trained_tokens: int = 0
    eta_s: float | None = None
    peak_memory_gb: float | None = None
    elapsed_s: float = 0.0

    def to_event(self, job_id: str) -> TrainProgress:
        return TrainProgress(
            job_id=job_id,
            iteration=self.iteration,
            iterations=self.iterations,
            train_loss=self.train_loss,
            val_loss=self.val_loss,
            tokens_per_second=self.tokens_per_second,
            eta_s=self.eta_s,
            peak_memory_gb=self.peak_memory_gb,
        )


class TrainResult(BaseModel):
    status: Literal["finished", "cancelled"]
    adapter_dir: Path | None = Field(None, description="the final adapter; None when cancelled")
    checkpoint_dir: Path | None = Field(None, description="the latest checkpoint, to resume from")
    iterations: int = Field(description="steps completed, counting any resumed-from steps")
    curve: list[CurvePoint] = Field(default_factory=list)
    tokens: int = Field(0, description="tokens under the loss, summed over steps")
    seconds: float = Field(0.0, description="wall time, counting any resumed-from run")
    tokens_per_second: float | None = None
    peak_memory_gb: float | None = None
    train_samples: int = 0
    valid_samples: int = 0
    batch_size: int = 0
    notes: list[str] = Field(default_factory=list)

    def final_val_loss(self) -> float | None:
        vals = [p.val_loss for p in self.curve if p.val_loss is not None]
        return vals[-1] if vals else None


class DataStats(BaseModel):
    samples: int
    tokens: int = Field(description="all tokens, prompts included")
    target_tokens: int = Field(description="tokens under the loss")
    longest: int = Field(description="tokens in the longest sample")
    truncated: int = Field(0, description="samples longer than max_seq_length")
    unusable: int = Field(0, description="samples whose prompt alone fills max_seq_length")


class TrainHooks:
    """What a strategy may change about a training run. The defaults change nothing."""

    def on_model_ready(self, model: Any, tokenizer: Any, config: TrainConfig) -> None:
        """Called once the LoRA layers exist and any initial adapter is loaded."""

    def wrap_loss(self, loss: Callable[..., Any]) -> Callable[..., Any]:
        """Return the loss to train with, given mlx-lm's `default_loss(model, batch, lengths)`.
        It must return `(loss, tokens)` and is used for validation too (with
        `model.training` False)."""
        return loss

    def adapter_metadata(self) -> dict[str, Any]:
        """Extra facts stored under `looper` in the adapter's config."""
        return {}

    def export(
        self, model: Any, weights: dict[str, Any], config: AdapterConfig
    ) -> tuple[dict[str, Any], AdapterConfig]:
        """The tensors and config to write for the trained weights (checkpoints included):
        a strategy that trains a reparametrised adapter turns it back into mlx-lm's layout."""
        return weights, config


class _Cancelled(Exception):
    def __init__(self, completed: int) -> None:
        super().__init__(completed)
        self.completed = completed


# --- rows ---------------------------------------------------------------------------


def clean_rows(rows: list[dict[str, Any]], *, what: str = "training") -> list[dict[str, Any]]:
    """Check rows and keep only what mlx-lm reads (`messages`, `tools`); `meta` is dropped.
    A malformed row raises UserError naming it."""
    out: list[dict[str, Any]] = []
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not isinstance(row.get("messages"), list) or not row["messages"]:
            raise UserError(f"{what} row {n} has no 'messages' list")
        for m in row["messages"]:
            if (
                not isinstance(m, dict)
                or not isinstance(m.get("role"), str)
                or not isinstance(m.get("content"), str)
            ):
                raise UserError(f"{what} row {n}: every message needs a string 'role' and 'content'")
        if row["messages"][-1]["role"] != "assistant":
            raise UserError(f"{what} row {n}: the last message must be the assistant's")
        out.append({k: row[k] for k in _ROW_KEYS if k in row})
    return out


def row_family(row: dict[str, Any]) -> str | None:
    """The task family a row was recorded on (`row["meta"]["family"]`), if any."""
    meta = row.get("meta")
    fam = meta.get("family") if isinstance(meta, dict) else None
    return str(fam) if fam is not None else None


def split_rows(
    rows: list[dict[str, Any]], valid_share: float = 0.1, seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A seeded train/validation split; at least one row stays in training."""
    if not 0.0 <= valid_share < 1.0:
        raise UserError(f"valid_share must be in [0, 1), got {valid_share}")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_valid = min(round(len(rows) * valid_share), max(len(rows) - 1, 0))
    valid_idx = set(order[:n_valid])
    return (
        [r for i, r in enumerate(rows) if i not in valid_idx],
        [r for i, r in enumerate(rows) if i in valid_idx],
    )


def _fingerprint(rows: list[dict[str, Any]]) -> str:
    text = json.dumps(rows, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def end_of_turn_ids(tokenizer: Any) -> set[int]:
    """The token ids that end a generated turn: generation stops at the first of them."""
    ids = getattr(tokenizer, "eos_token_ids", None)
    if not ids:
        eos = getattr(tokenizer, "eos_token_id", None)
        ids = eos if isinstance(eos, list) else [eos] if eos is not None else []
    return {int(i) for i in ids}


def ends_at_end_of_turn(tokens: list[int], offset: int, end_ids: set[int]) -> list[int]:
    """The row's tokens cut after the last end-of-turn token of its target. A chat template
    writes text after that token (a newline, say) that the model never generates: generation
    stops at the end token. Training on it would teach a prediction inference never makes,
    and for a base model that never saw it as a target its loss dwarfs the rest."""
    for i in range(len(tokens) - 1, offset - 1, -1):
        if tokens[i] in end_ids:
            return tokens[: i + 1]
    return tokens


def _chat_dataset(rows: list[dict[str, Any]], tokenizer: Any, mask_prompt: bool) -> Any:
    from mlx_lm.tuner.datasets import CacheDataset, ChatDataset

    end_ids = end_of_turn_ids(tokenizer)

    class _TurnDataset(ChatDataset):  # type: ignore[misc]
        def process(self, d: dict[str, Any]) -> tuple[list[int], int]:
            tokens, offset = super().process(d)
            return ends_at_end_of_turn(list(tokens), offset, end_ids), offset

    return CacheDataset(_TurnDataset(rows, tokenizer, mask_prompt=mask_prompt))


def data_stats(
    rows: list[dict[str, Any]],
    tokenizer: Any,
    *,
    max_seq_length: int | None = None,
    mask_prompt: bool = True,
) -> DataStats:
    """Token counts for rows as training will see them (same chat template, same masking)."""
    ds = _chat_dataset(clean_rows(rows), tokenizer, mask_prompt)
    total = target = longest = truncated = unusable = 0
    for i in range(len(ds)):
        tokens, offset = ds[i]
        n = len(tokens)
        total += n
        longest = max(longest, n)
        kept = n if max_seq_length is None else min(n, max_seq_length)
        if max_seq_length is not None and n > max_seq_length:
            truncated += 1
        if offset >= kept:
            unusable += 1
        target += max(kept - offset, 0)
    return DataStats(
        samples=len(ds),
        tokens=total,
        target_tokens=target,
        longest=longest,
        truncated=truncated,
        unusable=unusable,
    )


# --- batches ------------------------------------------------------------------------


def _schedule(config: TrainConfig) -> Any:
    """The learning rate: constant, after `warmup` steps rising linearly to it."""
    import mlx.optimizers as optim

    lr = config.learning_rate
    if not config.warmup:
        return lr
    return optim.join_schedules(
        [optim.linear_schedule(lr / (config.warmup + 1), lr, config.warmup), optim.linear_schedule(lr, lr, 1)],
        [config.warmup],
    )


def _make_batch(dataset: Any, idxs: list[int], max_seq_length: int) -> tuple[Any, Any]:
    """mlx-lm's batch layout: token ids padded with 0 to one plus a multiple of 32, and
    per row (prompt offset, index of the last target) for `default_loss`'s mask."""
    import mlx.core as mx
    import numpy as np

    items = [dataset[j] for j in idxs]
    lengths = [min(len(tokens), max_seq_length) for tokens, _ in items]
    width = min(1 + 32 * ((max(lengths) + 31) // 32), max_seq_length)
    arr = np.zeros((len(items), width), np.int32)
    for row, ((tokens, _), n) in enumerate(zip(items, lengths, strict=True)):
        arr[row, :n] = tokens[:n]
    offsets = [offset for _, offset in items]
    # default_loss weighs target positions offset..L inclusive, so L = n would also train the
    # padding token after the row's last one (mlx-lm's own iterator does): the model would be
    # taught that the end token is followed by the pad id, a prediction inference never makes
    # and, for a model never trained on it, a loss that dwarfs the row's real targets.
    ends = [n - 1 for n in lengths]
    return mx.array(arr), mx.array(list(zip(offsets, ends, strict=True)))


def _train_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Rows sorted by length and cut into batches of similar length, to waste little
    padding. A short last batch is topped up with the rows before it, so every row is
    trained on (mlx-lm's own iterator drops the remainder) and every batch has the same
    number of rows."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if len(batches[-1]) < batch_size:
        batches[-1] = order[-batch_size:]
    return batches


def _epoch_order(n_batches: int, seed: int, epoch: int) -> list[int]:
    import numpy as np

    return [int(i) for i in np.random.default_rng([seed, epoch]).permutation(n_batches)]


def _eval_batches(dataset: Any, batch_size: int, num_batches: int, seed: int) -> list[list[int]]:
    """All rows (or a seeded sample of `num_batches` batches), the last batch possibly short,
    so the validation loss covers the whole set."""
    idx = list(range(len(dataset)))
    if num_batches != -1:
        random.Random(seed).shuffle(idx)
        idx = idx[: num_batches * batch_size]
    idx.sort(key=lambda i: (len(dataset[i][0]), i))
    return [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]


# --- output ---------------------------------------------------------------------------


@contextmanager
def silenced_mlx_console() -> Iterator[None]:
    """Mute mlx-lm's shared rich console. A console that is not a terminal makes rich's
    Live display neither redraw nor redirect sys.stdout, and `quiet` drops the rest."""
    from mlx_lm.cli_ui import make_console

    console = make_console()
    saved = (console.quiet, console._force_terminal)
    console.quiet = True
    console._force_terminal = False
    try:
        yield
    finally:
        console.quiet, console._force_terminal = saved


# --- checkpoints ----------------------------------------------------------------------


class _CheckpointState(BaseModel):
    model_config = ConfigDict(extra="allow")

    iteration: int
    iterations: int
    curve: list[CurvePoint] = Field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    config: dict[str, Any] = Field(default_factory=dict)
    model: str = ""
    data_fingerprint: str = ""
    has_optimizer: bool = False


def _checkpoint_name(iteration: int) -> str:
    return f"it-{iteration:07d}"


def find_checkpoint(path: Path) -> Path:
    """The checkpoint to resume from: `path` itself when it is one, else the latest one in
    `path/checkpoints/` or `path`. UserError when there is none."""
    path = Path(path)
    if (path / _STATE_FILE).is_file():
        return path
    for folder in (path / CHECKPOINTS_DIR, path):
        if folder.is_dir():
            found = sorted(
                p for p in folder.iterdir() if p.name.startswith("it-") and (p / _STATE_FILE).is_file()
            )
            if found:
                return found[-1]
    raise UserError(f"no training checkpoint found in {path}")


def _read_checkpoint(path: Path) -> _CheckpointState:
    try:
        return _CheckpointState.model_validate_json((path / _STATE_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read checkpoint {path}: {exc}") from None


def _write_checkpoint(
    ckpt_root: Path,
    state: _CheckpointState,
    weights: dict[str, Any],
    optimizer_state: dict[str, Any],
    adapter_config: AdapterConfig,
) -> Path:
    import mlx.core as mx

    dest = ckpt_root / _checkpoint_name(state.iteration)
    if (dest / _STATE_FILE).is_file():
        return dest
    ckpt_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".writing-", dir=ckpt_root))
    try:
        mx.save_safetensors(str(tmp / ADAPTER_WEIGHTS), weights, metadata={"format": "mlx"})
        mx.save_safetensors(str(tmp / _OPTIMIZER_FILE), optimizer_state)
        # A checkpoint is also a loadable adapter, so an intermediate one can be evaluated.
        (tmp / "adapter_config.json").write_text(adapter_config.model_dump_json(indent=2) + "\n")
        (tmp / _STATE_FILE).write_text(state.model_dump_json(indent=2) + "\n")
        os.chmod(tmp, 0o755)
        if dest.exists():
            shutil.rmtree(dest)  # an incomplete leftover without state.json
        os.rename(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


# --- training -----------------------------------------------------------------------


def _merge_curve(curve: dict[int, CurvePoint], point: CurvePoint) -> None:
    have = curve.get(point.iteration)
    if have is None:
        curve[point.iteration] = point
        return
    if point.train_loss is not None:
        have.train_loss = point.train_loss
    if point.val_loss is not None:
        have.val_loss = point.val_loss


def _check_same_lora(cfg: TrainConfig, other: AdapterConfig, n_layers: int, where: str) -> None:
    if other.fine_tune_type != cfg.fine_tune_type:
        raise UserError(
            f"{where} is a {other.fine_tune_type} fine-tune; this run asks for {cfg.fine_tune_type}"
        )
    if cfg.fine_tune_type == "full":
        return
    mine_layers = min(n_layers, cfg.num_layers) if cfg.num_layers > 0 else n_layers
    theirs_layers = min(other.num_layers, n_layers) if other.num_layers > 0 else n_layers
    mine = (cfg.rank, cfg.scale, cfg.keys, mine_layers)
    lp = other.lora_parameters
    theirs = (lp.rank, lp.scale, lp.keys, theirs_layers)
    if mine != theirs:
        raise UserError(
            f"{where} has LoRA rank {lp.rank}, scale {lp.scale}, keys {lp.keys}, {theirs_layers} layers; "
            f"this run asks for rank {cfg.rank}, scale {cfg.scale}, keys {cfg.keys}, {mine_layers} layers"
        )


def train_adapter(
    model_path: Path,
    train_rows: list[dict[str, Any]],
    valid_rows: list[dict[str, Any]],
    out_dir: Path,
    config: TrainConfig,
    *,
    on_progress: Callable[[TrainProgressInfo], None] | None = None,
    cancel: threading.Event | None = None,
    resume_from: Path | None = None,
    init_adapter: Path | None = None,
    strategy_hooks: TrainHooks | None = None,
    metadata: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a LoRA adapter on chat rows and write it to `out_dir` (mlx-lm's layout).

    `out_dir` must not hold an adapter yet; checkpoints go to `out_dir/checkpoints/`.
    `init_adapter` starts from an existing adapter's weights (continual training);
    `resume_from` (a checkpoint, or a run folder holding checkpoints) continues an earlier
    run: same iteration numbers, same batch order, Adam state restored, and the curve is
    the earlier one followed by the new points. When `cancel` is set the run stops before
    its next step, writes a checkpoint there and returns status "cancelled" without a
    final adapter. `metadata` is stored under `looper` in the adapter config."""
    import mlx.core as mx

    model_path = Path(model_path)
    out_dir = Path(out_dir)
    hooks = strategy_hooks or TrainHooks()
    request = _check_request(model_path, train_rows, valid_rows, out_dir, resume_from, init_adapter)

    with _TRAIN_LOCK, silenced_mlx_console():
        wall0 = time.perf_counter()
        notes: list[str] = []
        mx.reset_peak_memory()
        loaded = _load_model(model_path, config, hooks, request, notes)
        data = _prepare_data(request.train_rows, request.valid_rows, loaded.tokenizer, config, notes)
        run = _TrainingRun(
            loaded, data, config, hooks, request.checkpoint,
            _adapter_config(model_path, config, hooks, loaded.layers, data, init_adapter, metadata),
            out_dir / CHECKPOINTS_DIR, wall0, notes, on_progress=on_progress, cancel=cancel,
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".train-", dir=out_dir))
        try:
            done = run.run(scratch)
            if done is None:
                return run.result("cancelled", run.stopped_at, None)
            _write_adapter(run, out_dir, done)
            if any(p.train_loss is not None and math.isnan(p.train_loss) for p in run.curve.values()):
                notes.append("training loss became NaN; lower the learning rate")
            return run.result("finished", done, out_dir)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


# --- the request and the model --------------------------------------------------------


@dataclass
class _Request:
    """A training request, checked: the clean rows, and what it starts from."""

    train_rows: list[dict[str, Any]]
    valid_rows: list[dict[str, Any]]
    init_adapter: Path | None
    init_cfg: AdapterConfig | None
    checkpoint: _Resume | None


@dataclass
class _Resume:
    """The checkpoint a run resumes from."""

    path: Path
    state: _CheckpointState


def _check_request(
    model_path: Path,
    train_rows: list[dict[str, Any]],
    valid_rows: list[dict[str, Any]],
    out_dir: Path,
    resume_from: Path | None,
    init_adapter: Path | None,
) -> _Request:
    """Everything that can be checked before the model is loaded; UserError if it is wrong."""
    if not (model_path / "config.json").is_file():
        raise UserError(f"model folder {model_path} has no config.json")
    if not train_rows:
        raise UserError("no training rows: nothing to train on")
    if resume_from is not None and init_adapter is not None:
        raise UserError("give either resume_from or init_adapter, not both")
    if out_dir.is_dir() and holds_adapter_files(out_dir):
        raise UserError(f"{out_dir} already holds an adapter; choose a new folder")
    train_clean = clean_rows(train_rows)
    valid_clean = clean_rows(valid_rows, what="validation") if valid_rows else []
    resume: _Resume | None = None
    if resume_from is not None:
        ckpt_path = find_checkpoint(resume_from)
        resume = _Resume(path=ckpt_path, state=_read_checkpoint(ckpt_path))
    init_cfg = read_adapter_config(init_adapter) if init_adapter is not None else None
    return _Request(train_clean, valid_clean, init_adapter, init_cfg, resume)


@dataclass
class _LoadedModel:
    """The model ready to train: trainable layers in place, any initial weights loaded."""

    model: Any
    tokenizer: Any
    layers: int  # the transformer blocks adapted


def _load_model(
    model_path: Path, config: TrainConfig, hooks: TrainHooks, request: _Request, notes: list[str]
) -> _LoadedModel:
    """Load the model, make its LoRA layers (or unfreeze its weights for a full fine-tune)
    and load the initial adapter or the checkpoint's weights."""
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, tokenizer = load(str(model_path))
    n_layers = len(model.layers)
    if config.num_layers > n_layers:
        raise UserError(f"num_layers {config.num_layers} exceeds the model's {n_layers} layers")
    layers = n_layers if config.num_layers == -1 else config.num_layers

    # mlx-lm seeds the same way, so LoRA's initial A matrices match its CLI's.
    mx.random.seed(config.seed)
    model.freeze()
    if config.fine_tune_type == "full":
        if config.num_layers == -1:
            model.unfreeze()
        else:
            for block in model.layers[-layers:]:
                block.unfreeze()
    else:
        linear_to_lora_layers(model, layers, config.lora_parameters().model_dump(exclude_none=True))
    init_adapter = request.init_adapter
    if request.init_cfg is not None and init_adapter is not None:
        _check_same_lora(config, request.init_cfg, n_layers, f"initial adapter {init_adapter}")
        model.load_weights(list(load_adapter_weights(init_adapter).items()), strict=False)
    resume = request.checkpoint
    if resume is not None:
        _check_same_lora(config, read_adapter_config(resume.path), n_layers, f"checkpoint {resume.path}")
        model.load_weights(list(load_adapter_weights(resume.path).items()), strict=False)
        fingerprint = resume.state.data_fingerprint
        if fingerprint and fingerprint != _fingerprint(request.train_rows):
            notes.append("resumed on different training rows than the checkpoint was trained on")
    mx.eval(model.parameters())
    hooks.on_model_ready(model, tokenizer, config)
    return _LoadedModel(model=model, tokenizer=tokenizer, layers=layers)


# --- data preparation -----------------------------------------------------------------


@dataclass
class _PreparedData:
    """The rows as training sees them: tokenized, the unusable ones dropped, in batches."""

    train_rows: list[dict[str, Any]]
    valid_rows: list[dict[str, Any]]
    train_ds: Any
    valid_ds: Any | None
    batch_size: int
    batches: list[list[int]]


def _usable(ds: Any, max_seq_length: int) -> list[int]:
    """The samples whose prompt leaves room for a target within max_seq_length."""
    return [i for i in range(len(ds)) if ds[i][1] < min(len(ds[i][0]), max_seq_length)]


def _prepare_data(
    train_rows: list[dict[str, Any]],
    valid_rows: list[dict[str, Any]],
    tokenizer: Any,
    config: TrainConfig,
    notes: list[str],
) -> _PreparedData:
    """Tokenize the clean rows with mlx-lm's ChatDataset, drop the rows whose prompt fills
    max_seq_length (a validation set may end up empty, a training set may not) and cut the
    training rows into batches."""
    train_ds = _chat_dataset(train_rows, tokenizer, config.mask_prompt)
    keep = _usable(train_ds, config.max_seq_length)
    if len(keep) < len(train_ds):
        notes.append(f"{len(train_ds) - len(keep)} training rows skipped: their prompt fills max_seq_length")
        if not keep:
            raise UserError(f"every training row's prompt is longer than max_seq_length {config.max_seq_length}")
        train_rows = [train_rows[i] for i in keep]
        train_ds = _chat_dataset(train_rows, tokenizer, config.mask_prompt)
    lengths = [len(train_ds[i][0]) for i in range(len(train_ds))]
    if max(lengths) > config.max_seq_length:
        n_long = sum(n > config.max_seq_length for n in lengths)
        notes.append(f"{n_long} training rows truncated to max_seq_length {config.max_seq_length}")
    valid_ds = _chat_dataset(valid_rows, tokenizer, config.mask_prompt) if valid_rows else None
    if valid_ds is not None:
        valid_ok = _usable(valid_ds, config.max_seq_length)
        if len(valid_ok) < len(valid_ds):
            notes.append(f"{len(valid_ds) - len(valid_ok)} validation rows skipped: prompt too long")
            valid_rows = [valid_rows[i] for i in valid_ok]
            valid_ds = _chat_dataset(valid_rows, tokenizer, config.mask_prompt) if valid_rows else None

    batch_size = min(config.batch_size, len(train_ds))
    if batch_size < config.batch_size:
        notes.append(f"batch size {batch_size}: only {len(train_ds)} training rows")
    return _PreparedData(
        train_rows=train_rows,
        valid_rows=valid_rows,
        train_ds=train_ds,
        valid_ds=valid_ds,
        batch_size=batch_size,
        batches=_train_batches(lengths, batch_size),
    )


def _adapter_config(
    model_path: Path,
    config: TrainConfig,
    hooks: TrainHooks,
    layers: int,
    data: _PreparedData,
    init_adapter: Path | None,
    metadata: dict[str, Any] | None,
) -> AdapterConfig:
    """The adapter config every checkpoint and the final adapter start from."""
    return AdapterConfig(
        fine_tune_type=config.fine_tune_type,
        num_layers=layers,
        lora_parameters=config.lora_parameters(),
        model=str(model_path),
        looper={
            **(metadata or {}),
            **hooks.adapter_metadata(),
            "base_model": str(model_path),
            "train_samples": len(data.train_rows),
            "valid_samples": len(data.valid_rows),
            "seed": config.seed,
            "init_adapter": str(init_adapter) if init_adapter is not None else None,
        },
    )


# --- the training run -------------------------------------------------------------------


class _TrainingRun:
    """One run of mlx-lm's trainer with our batch order, evaluation and checkpoint schedule,
    progress reports and cancellation. `run` trains; `result` says what came of it."""

    def __init__(
        self,
        loaded: _LoadedModel,
        data: _PreparedData,
        config: TrainConfig,
        hooks: TrainHooks,
        resume: _Resume | None,
        adapter_cfg: AdapterConfig,
        ckpt_root: Path,
        wall0: float,
        notes: list[str],
        *,
        on_progress: Callable[[TrainProgressInfo], None] | None,
        cancel: threading.Event | None,
    ) -> None:
        import mlx.core as mx
        import mlx.optimizers as optim
        from mlx.utils import tree_unflatten
        from mlx_lm.tuner.trainer import default_loss

        self.model = loaded.model
        self.data = data
        self.config = config
        self.hooks = hooks
        self.adapter_cfg = adapter_cfg
        self.ckpt_root = ckpt_root
        self.wall0 = wall0
        self.notes = notes
        self.on_progress = on_progress
        self.cancel = cancel
        self.loss_fn = hooks.wrap_loss(default_loss)
        self.optimizer = optim.Adam(learning_rate=_schedule(config))
        self.total = config.iters
        self.start = 0
        self.curve: dict[int, CurvePoint] = {}
        self.prior_tokens, self.prior_seconds = 0, 0.0
        if resume is not None:
            self.start = resume.state.iteration
            for p in resume.state.curve:
                _merge_curve(self.curve, p.model_copy())
            self.prior_tokens, self.prior_seconds = resume.state.tokens, resume.state.seconds
            opt_file = resume.path / _OPTIMIZER_FILE
            if resume.state.has_optimizer and opt_file.is_file():
                self.optimizer.init(self.model.trainable_parameters())
                restored = tree_unflatten(list(mx.load(str(opt_file)).items()))
                restored["learning_rate"] = mx.array(config.learning_rate, dtype=mx.float32)
                self.optimizer.state = restored
            else:
                notes.append("checkpoint has no optimizer state; Adam restarted")
        self.fingerprint = _fingerprint(data.train_rows)
        self.tokens = 0
        self.last_ckpt: Path | None = None
        self.started = time.perf_counter()
        self.stopped_at = self.start

    # -- the clock and the reports --

    def peak_gb(self) -> float:
        import mlx.core as mx

        return mx.get_peak_memory() / 1e9

    def elapsed(self) -> float:
        return time.perf_counter() - self.wall0

    def eta(self, done: int) -> float | None:
        ran = done - self.start
        if ran <= 0:
            return None
        return (time.perf_counter() - self.started) / ran * max(self.total - done, 0)

    def emit(self, info: TrainProgressInfo) -> None:
        if self.on_progress is not None:
            self.on_progress(info)

    def check_cancel(self, done: int) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise _Cancelled(done)

    # -- checkpoints and evaluation --

    def save_checkpoint(self, done: int) -> Path:
        from mlx.utils import tree_flatten

        state = _CheckpointState(
            iteration=done,
            iterations=self.total,
            curve=[self.curve[k] for k in sorted(self.curve)],
            tokens=self.prior_tokens + self.tokens,
            seconds=self.prior_seconds + self.elapsed(),
            config=self.config.model_dump(mode="json"),
            model=self.adapter_cfg.model,
            data_fingerprint=self.fingerprint,
            has_optimizer=True,
        )
        ckpt_cfg = self.adapter_cfg.model_copy(
            update={"looper": {**self.adapter_cfg.looper, "checkpoint_iteration": done}}
        )
        ckpt_weights, ckpt_cfg = self.hooks.export(
            self.model, dict(tree_flatten(self.model.trainable_parameters())), ckpt_cfg
        )
        path = _write_checkpoint(
            self.ckpt_root,
            state,
            ckpt_weights,
            dict(tree_flatten(self.optimizer.state)),
            ckpt_cfg,
        )
        self.last_ckpt = path
        return path

    def run_eval(self, done: int) -> None:
        from mlx_lm.tuner.trainer import evaluate

        if self.data.valid_ds is None:
            return
        val_loss = evaluate(
            model=self.model,
            dataset=self.data.valid_ds,
            batch_size=self.data.batch_size,
            num_batches=self.config.val_batches,
            max_seq_length=self.config.max_seq_length,
            loss=self.loss_fn,
            iterate_batches=self.eval_iterate,
        )
        self.model.train()
        _merge_curve(self.curve, CurvePoint(iteration=done, val_loss=val_loss))
        self.emit(
            TrainProgressInfo(
                iteration=done,
                iterations=self.total,
                val_loss=val_loss,
                trained_tokens=self.prior_tokens + self.tokens,
                eta_s=self.eta(done),
                peak_memory_gb=self.peak_gb(),
                elapsed_s=self.elapsed(),
            )
        )

    # -- what mlx-lm's trainer calls --

    def eval_iterate(self, dataset: Any, batch_size: int, max_seq_length: int, **_: Any) -> Iterator[Any]:
        for idxs in _eval_batches(dataset, batch_size, self.config.val_batches, self.config.seed):
            yield _make_batch(dataset, idxs, max_seq_length)

    def train_iterate(self, dataset: Any, batch_size: int, max_seq_length: int, **_: Any) -> Iterator[Any]:
        # mlx-lm pulls the next batch only after the previous step is fully evaluated,
        # so this is the one place between steps: evaluate, checkpoint, cancel here.
        config, start, batches = self.config, self.start, self.data.batches
        done = start
        while True:
            # A resumed run's first point was evaluated before its checkpoint was saved.
            if done % config.steps_per_eval == 0 and not (done > 0 and done == start):
                self.run_eval(done)
            if done > start and done % config.save_every == 0:
                self.save_checkpoint(done)
            self.check_cancel(done)
            epoch, pos = divmod(done, len(batches))
            idxs = batches[_epoch_order(len(batches), config.seed, epoch)[pos]]
            yield _make_batch(dataset, idxs, max_seq_length)
            done += 1

    def on_train_loss_report(self, info: dict[str, Any]) -> None:
        done = self.start + int(info["iteration"])
        self.tokens = int(info["trained_tokens"])
        _merge_curve(self.curve, CurvePoint(iteration=done, train_loss=float(info["train_loss"])))
        self.emit(
            TrainProgressInfo(
                iteration=done,
                iterations=self.total,
                train_loss=float(info["train_loss"]),
                learning_rate=float(info["learning_rate"]),
                tokens_per_second=float(info["tokens_per_second"]),
                trained_tokens=self.prior_tokens + self.tokens,
                eta_s=self.eta(done),
                peak_memory_gb=float(info["peak_memory"]),
                elapsed_s=self.elapsed(),
            )
        )
        self.check_cancel(done)

    # -- the run --

    def run(self, scratch: Path) -> int | None:
        """Train up to `config.iters` steps and write the last checkpoint: the steps done,
        or None when cancelled (`stopped_at` then says after how many, and a checkpoint
        there is written)."""
        from mlx_lm.tuner.callbacks import TrainingCallback
        from mlx_lm.tuner.trainer import TrainingArgs, train

        start, total, config = self.start, self.total, self.config
        if start >= total:
            return start
        run = self

        class _Reporter(TrainingCallback):
            def on_train_loss_report(self, info: dict[str, Any]) -> None:
                run.on_train_loss_report(info)

        args = TrainingArgs(
            batch_size=self.data.batch_size,
            iters=total - start,
            val_batches=config.val_batches,
            steps_per_report=config.steps_per_report,
            # evaluation and saving happen in train_iterate, on our own schedule
            steps_per_eval=total + 1,
            steps_per_save=total + 1,
            adapter_file=str(scratch / ADAPTER_WEIGHTS),
            max_seq_length=config.max_seq_length,
            grad_checkpoint=config.grad_checkpoint,
        )
        self.model.train()
        self.started = time.perf_counter()
        try:
            train(
                model=self.model,
                optimizer=self.optimizer,
                train_dataset=self.data.train_ds,
                val_dataset=None,
                args=args,
                loss=self.loss_fn,
                iterate_batches=self.train_iterate,
                training_callback=_Reporter(),
            )
        except _Cancelled as stop:
            if stop.completed > start and (
                self.last_ckpt is None or self.last_ckpt.name != _checkpoint_name(stop.completed)
            ):
                self.save_checkpoint(stop.completed)
            self.notes.append(f"cancelled after {stop.completed} of {total} steps")
            self.stopped_at = stop.completed
            return None
        done = total
        if self.data.valid_ds is not None and (self.curve.get(done) is None or self.curve[done].val_loss is None):
            self.run_eval(done)
        self.save_checkpoint(done)
        return done

    def final_val_loss(self) -> float | None:
        return next(
            (self.curve[k].val_loss for k in sorted(self.curve, reverse=True) if self.curve[k].val_loss is not None),
            None,
        )

    def result(self, status: Literal["finished", "cancelled"], done: int, adapter: Path | None) -> TrainResult:
        train_seconds = time.perf_counter() - self.started
        return TrainResult(
            status=status,
            adapter_dir=adapter,
            checkpoint_dir=self.last_ckpt,
            iterations=done,
            curve=[self.curve[k] for k in sorted(self.curve)],
            tokens=self.prior_tokens + self.tokens,
            seconds=self.prior_seconds + self.elapsed(),
            tokens_per_second=(self.tokens / train_seconds) if self.tokens and train_seconds > 0 else None,
            peak_memory_gb=self.peak_gb(),
            train_samples=len(self.data.train_rows),
            valid_samples=len(self.data.valid_rows),
            batch_size=self.data.batch_size,
            notes=self.notes,
        )


# --- the adapter writer ---------------------------------------------------------------


def _write_adapter(run: _TrainingRun, out_dir: Path, done: int) -> None:
    """Write the trained weights to `out_dir` atomically, in mlx-lm's layout (through the
    strategy's export), with the iterations and the last validation loss in its config."""
    from mlx.utils import tree_flatten

    weights = dict(tree_flatten(run.model.trainable_parameters()))
    final_cfg = run.adapter_cfg.model_copy(
        update={
            "looper": {
                **run.adapter_cfg.looper,
                "iterations": done,
                "final_val_loss": run.final_val_loss(),
            }
        }
    )
    weights, final_cfg = run.hooks.export(run.model, weights, final_cfg)
    write_adapter_atomically(out_dir, weights, final_cfg)
