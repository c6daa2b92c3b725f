"""User settings stored as JSON in the app's data folder; defaults until first saved."""

import json
from pathlib import Path

DEFAULTS = {"theme": "dark", "font_size": 12, "autosave": True}


def load_settings(path: Path) -> dict:
    """Settings from `path` over DEFAULTS; DEFAULTS alone when the file doesn't exist yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileExistsError:
        return dict(DEFAULTS)
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: settings must be a JSON object")
    return {**DEFAULTS, **data}


def save_settings(path: Path, settings: dict) -> None:
    """Write only the settings that differ from DEFAULTS."""
    changed = {key: value for key, value in settings.items() if DEFAULTS.get(key) != value}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(changed, indent=2, sort_keys=True), encoding="utf-8")
