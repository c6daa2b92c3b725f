"""The task model shared by every suite."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class GoldEdit(BaseModel):
    """One exact replacement of the reference fix: `old` occurs once in `path`."""

    path: str
    old: str
    new: str


class Task(BaseModel):
    id: str  # e.g. "koans/off_by_one/range_end"
    suite: str  # "koans", "swe-bench-cl"
    family: str
    difficulty: int = Field(1, ge=1, le=5)
    statement: str
    #: Folder whose contents are copied into each episode's workspace.
    source_dir: Path
    #: Files the fix touches (what the oracle reads first).
    target_files: list[str] = Field(default_factory=list)
    gold: list[GoldEdit] = Field(default_factory=list)
    #: argv run inside the workspace; exit 0 means resolved. "{python}" is the interpreter.
    test_command: list[str] = Field(default_factory=lambda: ["{python}", "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"])
    repo: str = ""  # for SWE-Bench-CL: the repository


class Score(BaseModel):
    resolved: bool
    exit_code: int | None
    tests_passed: int = 0
    tests_failed: int = 0
    output: str = ""
    error_signature: str = ""
    duration_s: float = 0.0
