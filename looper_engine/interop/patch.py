"""What an episode changed, as a git-style unified diff of its workspace against the folder
it was copied from (for a SWE-bench task: the checkout at the base commit), which
`git apply` and the SWE-bench harness read.

Files whose size and modification time are those of the source are taken as unchanged
(the workspace copy keeps modification times), so the walk costs a `stat` per file and
reads only what changed.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from looper_engine.tools.workspace import SKIP_DIRS


def _files(root: Path) -> dict[str, os.stat_result]:
    out: dict[str, os.stat_result] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in filenames:
            path = Path(dirpath) / name
            # A git worktree's `.git` is a file naming its repository: not the task's content.
            if path.is_symlink() or name.endswith(".pyc") or name in SKIP_DIRS:
                continue
            try:
                out[path.relative_to(root).as_posix()] = path.stat()
            except OSError:
                continue
    return out


def _text(path: Path | None) -> list[str] | None:
    """The file's lines, [] when absent, None when it is not UTF-8 text."""
    if path is None:
        return []
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def _file_diff(rel: str, before: Path | None, after: Path | None) -> str:
    old, new = _text(before), _text(after)
    head = [f"diff --git a/{rel} b/{rel}\n"]
    if before is None:
        head.append("new file mode 100644\n")
    elif after is None:
        head.append("deleted file mode 100644\n")
    if old is None or new is None:
        return "".join(head) + f"Binary files a/{rel} and b/{rel} differ\n"
    if old == new:
        return ""
    body = []
    for line in difflib.unified_diff(
        old, new, "/dev/null" if before is None else f"a/{rel}", "/dev/null" if after is None else f"b/{rel}"
    ):
        body.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(head + body)


def workspace_diff(base: Path, workspace: Path) -> str:
    """Every change from `base` to `workspace`, files in path order; "" when none."""
    base, workspace = Path(base), Path(workspace)
    old, new = _files(base), _files(workspace)
    parts = []
    for rel in sorted(old.keys() | new.keys()):
        a, b = old.get(rel), new.get(rel)
        if a is not None and b is not None and a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns:
            continue
        parts.append(_file_diff(rel, base / rel if a else None, workspace / rel if b else None))
    return "".join(parts)
