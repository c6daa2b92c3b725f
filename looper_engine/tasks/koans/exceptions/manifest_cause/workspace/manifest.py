"""Load the deployment manifest (JSON) and report problems as ManifestError."""

import json
from pathlib import Path

REQUIRED = ("name", "version", "services")


class ManifestError(Exception):
    """A manifest that cannot be used; the CLI prints it and exits."""


def load_manifest(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise ManifestError(f"cannot read manifest {path.name}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path.name}: expected a JSON object")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise ManifestError(f"{path.name}: missing {', '.join(missing)}")
    return data


def describe_error(err: ManifestError) -> str:
    """One line for the CLI: the error, then its underlying cause when there is one."""
    cause = err.__cause__
    if cause is None:
        return str(err)
    return f"{err}: {type(cause).__name__}: {cause}"
