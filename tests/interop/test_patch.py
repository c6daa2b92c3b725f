"""The workspace diff an episode records is what `git apply` turns the source into the workspace with."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from looper_engine.interop.patch import workspace_diff


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.parts
    }


def test_git_apply_of_the_diff_rebuilds_the_workspace(tmp_path: Path) -> None:
    base = tmp_path / "base"
    (base / "src").mkdir(parents=True)
    (base / "src" / "mod.py").write_text("def add(a, b):\n    return a - b\n\n\nX = 1\n")
    (base / "gone.txt").write_text("delete me\n")
    (base / "tail.txt").write_text("no newline at the end")
    (base / "same.txt").write_text("untouched\n")
    ws = tmp_path / "ws"
    shutil.copytree(base, ws)
    (ws / "src" / "mod.py").write_text("def add(a, b):\n    return a + b\n\n\nX = 1\n")
    (ws / "gone.txt").unlink()
    (ws / "tail.txt").write_text("no newline at the end, still")
    (ws / "src" / "new.py").write_text("print('new')\n")
    (ws / "__pycache__").mkdir()
    (ws / "__pycache__" / "x.pyc").write_bytes(b"\0\1")

    patch = workspace_diff(base, ws)
    assert "same.txt" not in patch and "__pycache__" not in patch
    assert "diff --git a/src/mod.py b/src/mod.py" in patch and "+    return a + b" in patch

    target = tmp_path / "target"
    shutil.copytree(base, target)
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)
    subprocess.run(["git", "apply", "--check", "-"], cwd=target, input=patch, text=True, check=True)
    subprocess.run(["git", "apply", "-"], cwd=target, input=patch, text=True, check=True)
    assert tree(target) == {k: v for k, v in tree(ws).items() if "__pycache__" not in k}


def test_no_change_is_an_empty_diff(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.py").write_text("x = 1\n")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert workspace_diff(tmp_path / "a", tmp_path / "b") == ""
