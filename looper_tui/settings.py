"""What the lab remembers between launches (the theme), and what a user sets by hand (the
mini-lab's settings, under "minilab"), as a small JSON file. Only values that differ from
the defaults are written, so a later default reaches everyone who never changed it.

The folder is `$LOOPER_CONFIG_DIR` when set (tests point it at a temporary folder), else
`$XDG_CONFIG_HOME/looper`, else `~/.config/looper`. A settings file that cannot be read is
reported and replaced by the defaults; it never stops the lab from opening.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from looper_engine.evaluation.minilab import MiniLabSettings

SETTINGS_FILE = "settings.json"


def config_dir() -> Path:
    explicit = os.environ.get("LOOPER_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path.home() / ".config"
    return base / "looper"


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore")

    theme: str | None = Field(None, description="the theme chosen last (by --theme or the command palette)")
    demo_rate: float = Field(300.0, ge=0, description="tokens/s of the scripted demo run offered on an empty lab")
    minilab: MiniLabSettings = Field(
        default_factory=MiniLabSettings, description='the mini-lab (e.g. {"teach_strategy": "naive"})'
    )


def load_settings(folder: Path | None = None) -> tuple[Settings, str | None]:
    """The saved settings and, when the file was unusable, a one-line reason."""
    path = (folder or config_dir()) / SETTINGS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Settings(), None
    except OSError as exc:
        return Settings(), f"cannot read {path} ({exc.strerror or exc}); using defaults"
    try:
        return Settings.model_validate(json.loads(text)), None
    except (json.JSONDecodeError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        return Settings(), f"{path} is not valid settings ({first}); using defaults"


def save_settings(settings: Settings, folder: Path | None = None) -> str | None:
    """Write the settings atomically; a one-line reason when that was impossible."""
    folder = folder or config_dir()
    path = folder / SETTINGS_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(settings.model_dump_json(indent=2, exclude_defaults=True) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        return f"cannot save settings to {path} ({exc.strerror or exc})"
    return None
