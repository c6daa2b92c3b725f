"""The built-in koan suite: small, realistic Python bug fixes with tests.

Each koan lives in `koans/<family>/<name>/`: a `koan.toml` (the bug report, difficulty,
the files the fix touches, the reference fix as exact replacements) and a `workspace/`
folder that is copied into every episode (the buggy module and its pytest tests).
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from looper_engine.tasks.model import GoldEdit, Task

KOANS_DIR = Path(__file__).with_name("koans")
SUITE = "koans"


class _GoldSpec(GoldEdit):
    model_config = ConfigDict(extra="forbid")


class KoanSpec(BaseModel):
    """The contents of one koan.toml."""

    model_config = ConfigDict(extra="forbid")

    statement: str = Field(min_length=1)
    difficulty: int = Field(ge=1, le=5)
    target_files: list[str] = Field(min_length=1)
    gold: list[_GoldSpec] = Field(min_length=1)

    @field_validator("statement")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("statement is empty")
        return value


class KoanError(Exception):
    """A koan folder that cannot be loaded: a bug in the suite, not in anyone's input."""


def _load_one(family: str, folder: Path) -> Task:
    toml_path = folder / "koan.toml"
    try:
        spec = KoanSpec.model_validate(tomllib.loads(toml_path.read_text(encoding="utf-8")))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise KoanError(f"{toml_path}: {exc}") from exc
    workspace = folder / "workspace"
    if not workspace.is_dir():
        raise KoanError(f"{folder}: no workspace/ folder")
    for rel in {*spec.target_files, *(edit.path for edit in spec.gold)}:
        if not (workspace / rel).is_file():
            raise KoanError(f"{toml_path}: {rel} is not a file in the workspace")
    return Task(
        id=f"{family}/{folder.name}",
        suite=SUITE,
        family=family,
        difficulty=spec.difficulty,
        statement=spec.statement,
        source_dir=workspace,
        target_files=spec.target_files,
        gold=[GoldEdit(**edit.model_dump()) for edit in spec.gold],
    )


def load_koans_from(directory: Path) -> list[Task]:
    """Every koan under `directory` (`<family>/<name>/koan.toml`), sorted by id."""
    tasks = []
    for toml_path in directory.glob("*/*/koan.toml"):
        folder = toml_path.parent
        tasks.append(_load_one(folder.parent.name, folder))
    return sorted(tasks, key=lambda task: task.id)


@functools.cache
def _cached() -> tuple[Task, ...]:
    return tuple(load_koans_from(KOANS_DIR))


def load_koans() -> list[Task]:
    """The built-in koans, sorted by id ("<family>/<name>"). Read once per process."""
    return [task.model_copy(deep=True) for task in _cached()]
