"""Confinement: no path a model names may reach outside the workspace copy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from looper_engine.config import ToolSettings
from looper_engine.errors import UserError
from looper_engine.protocol.calls import ReadCall, WriteCall
from looper_engine.tools import PathOutsideWorkspace, Workspace, execute


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    src = tmp_path / "task"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("x = 1\n")
    (src / "pkg" / "__pycache__").mkdir()
    (src / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\x00")
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret\n")
    os.symlink(secret, src / "leak")
    os.symlink("pkg/mod.py", src / "alias.py")
    return src


async def test_create_copies_task_without_caches_and_keeps_symlinks(task_dir: Path, tmp_path: Path) -> None:
    ws = await Workspace.create(task_dir, parent=tmp_path / "runs")
    try:
        assert ws.root.is_relative_to((tmp_path / "runs").resolve())
        assert (ws.root / "pkg" / "mod.py").read_text() == "x = 1\n"
        assert not (ws.root / "pkg" / "__pycache__").exists()
        assert (ws.root / "leak").is_symlink()
        # The copy is independent of the task folder.
        (ws.root / "pkg" / "mod.py").write_text("x = 2\n")
        assert (task_dir / "pkg" / "mod.py").read_text() == "x = 1\n"
    finally:
        ws.cleanup()
    assert not ws.root.exists()
    assert task_dir.exists()


async def test_create_refuses_missing_source(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        await Workspace.create(tmp_path / "nope")


def test_attach_uses_folder_in_place_and_cleanup_leaves_it(task_dir: Path) -> None:
    ws = Workspace.attach(task_dir)
    assert ws.resolve("pkg/mod.py") == (task_dir / "pkg" / "mod.py").resolve()
    ws.cleanup()
    assert (task_dir / "pkg" / "mod.py").exists()
    with pytest.raises(UserError):
        Workspace.attach(task_dir / "pkg" / "mod.py")


@pytest.mark.parametrize("bad", ["/etc/passwd", "../secret.txt", "pkg/../../secret.txt", "~/.bashrc"])
def test_paths_outside_are_refused(task_dir: Path, bad: str) -> None:
    ws = Workspace.attach(task_dir)
    with pytest.raises(PathOutsideWorkspace, match="outside the workspace; use a path relative"):
        ws.resolve(bad)


def test_symlink_pointing_outside_is_refused(task_dir: Path) -> None:
    ws = Workspace.attach(task_dir)
    with pytest.raises(PathOutsideWorkspace, match="symlink that points outside"):
        ws.resolve("leak")


def test_symlink_inside_and_absolute_inside_are_allowed(task_dir: Path) -> None:
    ws = Workspace.attach(task_dir)
    target = (task_dir / "pkg" / "mod.py").resolve()
    assert ws.resolve("alias.py") == target
    assert ws.resolve(str(target)) == target
    assert ws.resolve("pkg/./../pkg/mod.py") == target
    assert ws.resolve("new/dir/file.py") == ws.root / "new" / "dir" / "file.py"


async def test_tools_turn_escapes_into_observations(task_dir: Path, tmp_path: Path) -> None:
    ws = Workspace.attach(task_dir)
    settings = ToolSettings()
    read = await execute(ReadCall(path="leak"), ws, settings)
    assert not read.ok and "top secret" not in read.output
    write = await execute(WriteCall(path="../evil.txt", content="x"), ws, settings)
    assert not write.ok and "outside the workspace" in write.output
    assert not (tmp_path / "evil.txt").exists()
    through_link = await execute(WriteCall(path="leak", content="overwritten"), ws, settings)
    assert not through_link.ok
    assert (tmp_path / "secret.txt").read_text() == "top secret\n"


def test_snapshot_digest_tracks_content_not_caches(task_dir: Path) -> None:
    ws = Workspace.attach(task_dir)
    first = ws.snapshot_digest()
    assert ws.snapshot_digest() == first
    (task_dir / "pkg" / "__pycache__" / "other.pyc").write_bytes(b"\x01")
    (task_dir / ".pytest_cache").mkdir()
    (task_dir / ".pytest_cache" / "v").write_text("cache")
    assert ws.snapshot_digest() == first
    (task_dir / "pkg" / "mod.py").write_text("x = 2\n")
    changed = ws.snapshot_digest()
    assert changed != first
    (task_dir / "pkg" / "mod.py").write_text("x = 1\n")
    assert ws.snapshot_digest() == first
    (task_dir / "pkg" / "empty.py").write_text("")
    assert ws.snapshot_digest() != first
