"""A task's working copy: a temp folder the file tools can never step out of."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from looper_engine.errors import UserError

#: Folders that hold caches or VCS data: never part of what an agent changed or looks for.
SKIP_DIRS: frozenset[str] = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".git"})

_COPY_IGNORE = shutil.ignore_patterns("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache")


class ToolError(Exception):
    """Something a model's tool call got wrong; its message becomes the observation."""


class PathOutsideWorkspace(ToolError):
    """A path that would reach outside the workspace (absolute, `..`, or a symlink out)."""


def _outside(path: str, why: str = "is outside the workspace") -> PathOutsideWorkspace:
    return PathOutsideWorkspace(
        f"path '{path}' {why}; use a path relative to the workspace root, e.g. src/mod.py"
    )


class Workspace:
    """A folder the tools work in. Every path a model names goes through :meth:`resolve`."""

    def __init__(self, root: Path, *, owned: bool = False) -> None:
        self.root: Path = root.resolve()
        self._owned = owned

    @classmethod
    async def create(cls, source_dir: Path, parent: Path | None = None) -> Workspace:
        """Copy ``source_dir`` into a fresh temp folder (under ``parent`` when given).

        Symlinks are copied as symlinks, so a link that pointed outside the task still
        points outside and is refused, rather than silently becoming a copy."""
        source = Path(source_dir)
        if not source.is_dir():
            raise UserError(f"task folder '{source}' does not exist or is not a folder")
        if parent is not None:
            Path(parent).mkdir(parents=True, exist_ok=True)

        def copy() -> Path:
            root = Path(tempfile.mkdtemp(prefix="looper-ws-", dir=parent))
            try:
                shutil.copytree(source, root, symlinks=True, ignore=_COPY_IGNORE, dirs_exist_ok=True)
            except BaseException:
                shutil.rmtree(root, ignore_errors=True)
                raise
            return root

        return cls(await asyncio.to_thread(copy), owned=True)

    @classmethod
    def attach(cls, root: Path) -> Workspace:
        """Work in an existing folder in place (nothing is copied; cleanup removes nothing)."""
        root = Path(root)
        if not root.is_dir():
            raise UserError(f"workspace folder '{root}' does not exist or is not a folder")
        return cls(root, owned=False)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def resolve(self, rel: str) -> Path:
        """The real path ``rel`` names inside the workspace, or :class:`PathOutsideWorkspace`.

        An absolute path is accepted only when it already lies inside the workspace (models
        copy such paths from tracebacks); anything else absolute is refused."""
        text = rel.strip()
        if not text:
            raise ToolError("the path is empty; name a file relative to the workspace root, e.g. src/mod.py")
        if "\x00" in text:
            raise ToolError(f"path {text!r} contains a NUL byte")
        if text.startswith("~"):
            raise _outside(text)
        candidate = Path(text)
        if candidate.is_absolute():
            if not candidate.resolve().is_relative_to(self.root):
                raise _outside(text)
        else:
            candidate = self.root / candidate
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise ToolError(f"path '{text}' cannot be resolved: {exc}") from exc
        if not resolved.is_relative_to(self.root):
            if candidate.absolute() != resolved and ".." not in candidate.parts:
                raise _outside(text, "is a symlink that points outside the workspace")
            raise _outside(text)
        return resolved

    def relative(self, path: Path) -> str:
        """``path`` as the model should write it: relative to the root, with forward slashes."""
        try:
            rel = Path(path).relative_to(self.root)
        except ValueError:
            return str(path)
        return rel.as_posix() if rel.parts else "."

    def iter_files(self, limit: int = 50_000) -> Iterator[Path]:
        """Files under the root (symlinks not followed), skipping caches and .git; at most ``limit``."""
        count = 0
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for name in sorted(filenames):
                yield Path(dirpath) / name
                count += 1
                if count >= limit:
                    return

    def file_list(self, limit: int = 50_000) -> list[str]:
        """Relative paths of the workspace's files, sorted."""
        return [self.relative(p) for p in self.iter_files(limit)]

    def stat_snapshot(self) -> dict[str, tuple[int, int]]:
        """Relative path -> (mtime_ns, size): a cheap way to see which files a command touched."""
        # Taken twice per bash step: plain strings and os.lstat, not Path objects.
        snap: dict[str, tuple[int, int]] = {}
        root = str(self.root)
        cut = len(root) + 1
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
            prefix = dirpath[cut:].replace(os.sep, "/")
            for name in filenames:
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except OSError:
                    continue
                snap[f"{prefix}/{name}" if prefix else name] = (st.st_mtime_ns, st.st_size)
                if len(snap) >= 50_000:
                    return snap
        return snap

    def snapshot_digest(self) -> str:
        """A hash of every file's path and content; equal digests mean no file changed.

        Symlinks are hashed by their target text, never followed, so a link out of the
        workspace is not read."""
        h = hashlib.sha256()
        for path in self.iter_files():
            rel = self.relative(path)
            try:
                if path.is_symlink():
                    data = b"link:" + os.readlink(path).encode("utf-8", "surrogateescape")
                else:
                    data = path.read_bytes()
            except OSError:
                data = b"<unreadable>"
            h.update(rel.encode("utf-8", "surrogateescape"))
            h.update(b"\x00")
            h.update(hashlib.sha256(data).digest())
        return h.hexdigest()

    def cleanup(self) -> None:
        """Remove the folder if this workspace made it (an attached folder is left alone)."""
        if self._owned:
            shutil.rmtree(self.root, ignore_errors=True)

    async def acleanup(self) -> None:
        """:meth:`cleanup` in a thread, for use from the event loop."""
        await asyncio.to_thread(self.cleanup)
