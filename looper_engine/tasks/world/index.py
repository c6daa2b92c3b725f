"""A cache of generated task lists, so loading a suite a second time costs a file read.

Generating and verifying an instance takes about a millisecond; a suite of 10,000 tasks would
take seconds at every `looper tasks`, every run and every experiment plan. The first call
writes what it made (each task's statement, gold span and files) to one JSON file named by the
call's arguments and by a hash of the world's own source, so any change to the catalog or the
generator is a new name and a stale list is never read. A later call rebuilds the tasks from
it and still makes every folder hold exactly its files.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from looper_engine.tasks.model import GoldEdit, Task
from looper_engine.tasks.world.generate import (
    SUITE,
    VERSION,
    Instance,
    instance_dir,
    test_command,
    write_folder,
)

_PACKAGE = Path(__file__).parent


@functools.cache
def source_hash() -> str:
    """A hash of every module of the world: what the generator yields depends on nothing else."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def index_path(cache_dir: Path, key: str) -> Path:
    name = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir / SUITE / f"v{VERSION}" / "index" / f"{source_hash()}-{name}.json"


def _row(instance: Instance, cache_dir: Path) -> dict[str, Any]:
    return {
        "id": instance.id,
        "family": instance.template.family,
        "statement": instance.statement,
        "folder": instance_dir(instance, cache_dir).relative_to(cache_dir).as_posix(),
        "module": instance.module,
        "test_file": instance.test_file,
        "old": instance.old,
        "new": instance.new,
        "files": instance.files(),
    }


def _task(row: dict[str, Any], cache_dir: Path) -> Task:
    folder = cache_dir / row["folder"]
    write_folder(folder, row["files"])
    return Task(
        id=row["id"],
        suite=SUITE,
        family=row["family"],
        difficulty=1,
        statement=row["statement"],
        source_dir=folder,
        target_files=[row["module"]],
        gold=[GoldEdit(path=row["module"], old=row["old"], new=row["new"])],
        test_command=test_command(row["test_file"]),
    )


def load(cache_dir: Path, key: str) -> list[Task] | None:
    """The tasks cached under `key`, their folders checked; None when there is no usable list."""
    path = index_path(cache_dir, key)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return [_task(row, cache_dir) for row in rows]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(cache_dir: Path, key: str, instances: list[Instance]) -> list[Task]:
    """Materialize the instances, write their list under `key`, return them as tasks."""
    rows = [_row(i, cache_dir) for i in instances]
    tasks = [_task(row, cache_dir) for row in rows]
    path = index_path(cache_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_text(json.dumps(rows), encoding="utf-8")
    os.replace(staging, path)
    return tasks
