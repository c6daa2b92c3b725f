"""Adapter folders in mlx-lm's own layout, written atomically.

An adapter folder holds `adapters.safetensors` and `adapter_config.json` exactly as
`mlx_lm.load(model, adapter_path=DIR)` and `mlx_lm generate --adapter-path DIR` expect.
Looper keeps its own facts about the adapter (id, strategy, family, base model, data
sizes, merge sources) under a `looper` key in the same config; mlx-lm ignores it.

Writes never overwrite: a folder that already holds an adapter raises UserError. The
config is the completion marker, so a crash mid-write never leaves a folder that loads.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from looper_engine.errors import UserError

ADAPTER_WEIGHTS = "adapters.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


class LoraParameters(BaseModel):
    model_config = ConfigDict(extra="allow")

    rank: int = Field(ge=1)
    scale: float
    dropout: float = 0.0
    keys: list[str] | None = None


class AdapterConfig(BaseModel):
    """`adapter_config.json`. Extra keys are kept, so configs written by mlx-lm's own CLI
    (which dumps every argument) read and round-trip unchanged."""

    model_config = ConfigDict(extra="allow")

    fine_tune_type: str = "lora"
    num_layers: int
    lora_parameters: LoraParameters
    model: str | None = None
    looper: dict[str, Any] = Field(default_factory=dict)

    def lora_dict(self) -> dict[str, Any]:
        """The `config` argument `mlx_lm.tuner.utils.linear_to_lora_layers` takes."""
        params = self.lora_parameters.model_dump(exclude_none=True)
        return params


def new_adapter_id(now: datetime | None = None) -> str:
    """A short id that sorts by creation time: `a-20261121-1532-3f9c`."""
    now = now or datetime.now()
    return f"a-{now:%Y%m%d-%H%M}-{secrets.token_hex(2)}"


def is_adapter_dir(path: Path) -> bool:
    """True when `path` holds a complete adapter (both files)."""
    path = Path(path)
    return (path / ADAPTER_CONFIG).is_file() and (path / ADAPTER_WEIGHTS).is_file()


def holds_adapter_files(path: Path) -> bool:
    """True when either adapter file is present, complete or not: such a folder is taken."""
    return (path / ADAPTER_CONFIG).exists() or (path / ADAPTER_WEIGHTS).exists()


def read_adapter_config(path: Path) -> AdapterConfig:
    """Read `adapter_config.json` from an adapter folder; UserError when it is missing or
    not an adapter config."""
    path = Path(path)
    cfg_path = path / ADAPTER_CONFIG
    if not cfg_path.is_file():
        raise UserError(f"{path} is not an adapter folder: {ADAPTER_CONFIG} is missing")
    try:
        data = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {cfg_path}: {exc}") from None
    try:
        return AdapterConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{cfg_path} is not a LoRA adapter config ({where}: {first['msg']})") from None


def load_adapter_weights(path: Path) -> dict[str, Any]:
    """The adapter's tensors by their mlx-lm names (e.g. `model.layers.0.self_attn.q_proj.lora_a`)."""
    import mlx.core as mx

    path = Path(path)
    weights_path = path / ADAPTER_WEIGHTS
    if not weights_path.is_file():
        raise UserError(f"{path} is not an adapter folder: {ADAPTER_WEIGHTS} is missing")
    return dict(mx.load(str(weights_path)))


def _write_files(folder: Path, weights: dict[str, Any], config: AdapterConfig) -> None:
    import mlx.core as mx

    text = json.dumps(config.model_dump(mode="json", exclude_none=False), indent=2) + "\n"
    try:
        mx.save_safetensors(str(folder / ADAPTER_WEIGHTS), weights, metadata={"format": "mlx"})
        (folder / ADAPTER_CONFIG).write_text(text)
    except (OSError, RuntimeError) as exc:  # mlx reports a failed write as RuntimeError
        raise UserError(f"cannot write the adapter in {folder.parent}: {exc} (is the disk full?)") from exc


def write_adapter_atomically(
    dest: Path,
    weights: dict[str, Any],
    config: AdapterConfig | dict[str, Any],
) -> Path:
    """Write an adapter folder at `dest` so that readers see either nothing or all of it.

    When `dest` does not exist the files are written into a temporary folder beside it,
    which is then renamed to `dest`. When `dest` exists without an adapter (a training
    run's folder that already holds checkpoints), the files are written into a temporary
    folder inside it and hard-linked into place, weights first and the config last;
    linking fails rather than replacing a file, so a concurrent writer cannot be
    clobbered either. A `dest` that already holds an adapter raises UserError."""
    dest = Path(dest)
    cfg = config if isinstance(config, AdapterConfig) else AdapterConfig.model_validate(config)
    if dest.exists() and not dest.is_dir():
        raise UserError(f"cannot write an adapter to {dest}: it is a file")
    if dest.is_dir() and holds_adapter_files(dest):
        raise UserError(f"{dest} already holds an adapter; choose a new folder")

    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.writing-", dir=dest.parent))
        try:
            os.chmod(tmp, 0o755)
            _write_files(tmp, weights, cfg)
            try:
                os.rename(tmp, dest)
            except OSError:
                # Someone created `dest` meanwhile; fall through to the linking path,
                # which refuses to replace anything that landed there.
                if not dest.is_dir():
                    raise
            else:
                return dest
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    tmp = Path(tempfile.mkdtemp(prefix=".writing-", dir=dest))
    try:
        _write_files(tmp, weights, cfg)
        for name in (ADAPTER_WEIGHTS, ADAPTER_CONFIG):
            try:
                os.link(tmp / name, dest / name)
            except FileExistsError:
                raise UserError(f"{dest} already holds an adapter; choose a new folder") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def verify_adapter_loads(model_path: Path, adapter_dir: Path) -> None:
    """Check that mlx-lm itself accepts the adapter for this model: `mlx_lm.load` with
    `adapter_path`, lazily, so no weights are read into memory. UserError when it fails."""
    from mlx_lm import load

    try:
        load(str(model_path), adapter_path=str(adapter_dir), lazy=True)
    except (ValueError, FileNotFoundError, KeyError, json.JSONDecodeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"mlx-lm cannot load adapter {adapter_dir} on {model_path}: {msg}") from None
