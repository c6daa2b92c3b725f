"""Run one tool call in a workspace and describe what happened, for the model and for the log.

Nothing a model can put in a call makes :func:`execute` raise: a bad path, a missing file, an
edit that matches nowhere, a command that hangs, all come back as an outcome whose output tells
the model what went wrong and what to do instead."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
import weakref
from pathlib import Path

from pydantic import BaseModel
from rapidfuzz import fuzz, process

from looper_engine.config import ToolSettings
from looper_engine.protocol.calls import BashCall, DoneCall, EditCall, ReadCall, WriteCall
from looper_engine.sandbox import Sandbox, SandboxSettings
from looper_engine.tools.edit import apply_edit
from looper_engine.tools.text import cap_output, number_lines, strip_ansi, strip_fences
from looper_engine.tools.workspace import SKIP_DIRS, ToolError, Workspace

_SIMILAR_PATHS = 10
_LISTING_MAX = 200
_CONTEXT_BEFORE = 2
_CONTEXT_AFTER = 3
#: bytes of a command's output kept at each end while it streams; the middle is only counted
_STREAM_KEEP = 1 << 20


#: signals the kernel sends a command that went past one of the sandbox's resource limits
_LIMIT_SIGNALS = {24: "its CPU time limit was reached", 25: "it wrote past the file-size limit"}


class ToolOutcome(BaseModel):
    """The result of one tool call. ``output`` is what the model reads as its observation.

    ``ok`` is False when the call could not do its job: a refused path, a missing file, an
    edit without a clear match, and for bash a non-zero exit or a timeout (``exit_code`` is
    None then). ``changed_files`` lists workspace-relative paths the call wrote or touched."""

    ok: bool
    output: str
    exit_code: int | None = None
    truncated: bool = False
    duration_s: float
    changed_files: list[str] = []


async def execute(
    call: BashCall | ReadCall | WriteCall | EditCall | DoneCall,
    ws: Workspace,
    settings: ToolSettings,
    sandbox: Sandbox | None = None,
) -> ToolOutcome:
    """Run ``call`` in ``ws``; a bash command runs in ``sandbox`` (None: unconfined). ``done`` is not a tool (the agent ends the episode on it): ValueError."""
    if isinstance(call, DoneCall):
        raise ValueError("<done> ends the episode; the agent handles it, it is not executed as a tool")
    started = time.perf_counter()
    try:
        if isinstance(call, BashCall):
            outcome = await _bash(call, ws, settings, sandbox)
        elif isinstance(call, ReadCall):
            outcome = await asyncio.to_thread(_read, call, ws, settings)
        elif isinstance(call, WriteCall):
            outcome = await asyncio.to_thread(_write, call, ws, settings)
        elif isinstance(call, EditCall):
            outcome = await asyncio.to_thread(_edit, call, ws, settings)
        else:
            raise TypeError(f"not a tool call: {call!r}")
    except ToolError as exc:
        outcome = _failed(str(exc))
    except UnicodeDecodeError:
        path = getattr(call, "path", "")
        outcome = _failed(f"'{path}' is not a UTF-8 text file (binary?); inspect it with <bash> instead")
    except UnicodeError:
        outcome = _failed("the call contains characters that cannot be encoded as UTF-8 (a lone surrogate?)")
    except OSError as exc:
        outcome = _failed(_os_error_message(exc, getattr(call, "path", None)))
    outcome.duration_s = time.perf_counter() - started
    return outcome


def _failed(message: str) -> ToolOutcome:
    return ToolOutcome(ok=False, output=message, duration_s=0.0)


def _os_error_message(exc: OSError, path: str | None) -> str:
    reason = exc.strerror or str(exc)
    return f"'{path}': {reason}" if path else reason


# ---------------------------------------------------------------------------- read


def _missing(ws: Workspace, rel: str) -> ToolError:
    files = ws.file_list()
    if not files:
        return ToolError(f"file '{rel}' not found; the workspace has no files")
    similar = process.extract(rel, files, scorer=fuzz.WRatio, limit=_SIMILAR_PATHS, score_cutoff=40)
    if not similar:
        return ToolError(f"file '{rel}' not found; list the files with <bash>find . -type f</bash>")
    listing = "\n".join(f"  {name}" for name, _, _ in similar)
    return ToolError(f"file '{rel}' not found. Similar paths in the workspace:\n{listing}")


def _listing(ws: Workspace, path: Path, rel: str) -> ToolOutcome:
    entries = sorted(
        (e for e in path.iterdir() if e.name not in SKIP_DIRS),
        key=lambda e: (not e.is_dir(), e.name),
    )
    shown = [f"  {e.name}/" if e.is_dir() else f"  {e.name}" for e in entries[:_LISTING_MAX]]
    label = "the workspace root" if rel == "." else f"'{rel}'"
    head = f"{label} is a folder with {len(entries)} entries:" if entries else f"{label} is an empty folder"
    more = len(entries) - _LISTING_MAX
    tail = [f"  ... and {more} more"] if more > 0 else []
    return ToolOutcome(ok=True, output="\n".join([head, *shown, *tail]), truncated=more > 0, duration_s=0.0)


def _read(call: ReadCall, ws: Workspace, settings: ToolSettings) -> ToolOutcome:
    path = ws.resolve(call.path)
    rel = ws.relative(path)
    if not path.exists():
        raise _missing(ws, call.path.strip())
    if path.is_dir():
        return _listing(ws, path, rel)
    lines = _split_lines(path.read_bytes().decode("utf-8"))
    total = len(lines)
    notes: list[str] = []

    wants_range = call.start is not None or call.end is not None
    if wants_range and not settings.line_range_reads:
        notes.append("[line range ignored: line-range reads are off, every read starts at line 1]")
        wants_range = False
    if total == 0:
        return ToolOutcome(ok=True, output=f"{rel} is empty (0 lines)", duration_s=0.0)

    start, end = 1, total
    if wants_range:
        start = call.start if call.start is not None else 1
        end = call.end if call.end is not None else total
        if start < 1:
            start = 1
        if start > total:
            raise ToolError(f"{rel} has {total} lines; line {start} is past the end")
        if end < start:
            raise ToolError(f"bad line range {start}-{end}: the end is before the start; e.g. {rel}:{start}-{start + 49}")
        end = min(end, total)

    shown, cut_line = _fit_lines(lines, start, end, settings.read_max_lines, settings.output_cap_chars)
    last = start + len(shown) - 1
    body = number_lines(shown, start, width=max(5, len(str(last))))
    truncated = last < end or cut_line
    span = f"lines {start}-{last} of {total}"
    if last < total:
        following = f"{last + 1}-{min(total, last + settings.read_max_lines)}"
        if settings.line_range_reads:
            notes.append(f"[{span}; next: <read>{rel}:{following}</read>]")
        else:
            notes.append(
                f"[{span}; line-range reads are off; to see more use "
                f"<bash>sed -n '{following.replace('-', ',')}p' {rel}</bash>]"
            )
    elif start > 1:
        notes.append(f"[{span}]")
    if cut_line:
        notes.append("[a very long line was cut to fit the output limit]")
    return ToolOutcome(ok=True, output="\n".join([body, *notes]), truncated=truncated, duration_s=0.0)


def _split_lines(text: str) -> list[str]:
    """Lines as editors and `sed -n` count them (str.splitlines also splits on form feeds)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _fit_lines(lines: list[str], start: int, end: int, max_lines: int, max_chars: int) -> tuple[list[str], bool]:
    """Lines start..end (1-based) that fit both limits; always at least one, cut if it alone is too long."""
    shown: list[str] = []
    used = 0
    for line in lines[start - 1 : min(end, start - 1 + max_lines)]:
        cost = len(line) + 9
        if shown and used + cost > max_chars:
            break
        shown.append(line)
        used += cost
    if len(shown) == 1 and len(shown[0]) > max_chars:
        return [shown[0][:max_chars] + " [...]"], True
    return shown, False


# ---------------------------------------------------------------------------- write


def _write(call: WriteCall, ws: Workspace, settings: ToolSettings) -> ToolOutcome:
    path = ws.resolve(call.path)
    rel = ws.relative(path)
    if path.is_dir():
        raise ToolError(f"'{rel}' is a folder; <write> needs a file path, e.g. {rel}/new_module.py")
    # The parser already stripped fences around the body (when the switch is on); stripping
    # again here would eat a fence that is the file's real content (a Markdown file).
    content = call.content
    if content and not content.endswith("\n"):
        # The tag layout rule drops the newline before </write>; a text file ends with one.
        content += "\n"
    existed = path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8")
    path.write_bytes(data)
    n_lines = content.count("\n") + (1 if content and not content.endswith("\n") else 0)
    verb = "overwrote" if existed else "created"
    return ToolOutcome(
        ok=True,
        output=f"{verb} {rel}: {len(data)} bytes, {n_lines} lines",
        duration_s=0.0,
        changed_files=[rel],
    )


# ---------------------------------------------------------------------------- edit


def _edit(call: EditCall, ws: Workspace, settings: ToolSettings) -> ToolOutcome:
    path = ws.resolve(call.path)
    rel = ws.relative(path)
    if not path.exists():
        raise _missing(ws, call.path.strip())
    if path.is_dir():
        raise ToolError(f"'{rel}' is a folder; <edit> needs a file path")
    raw = path.read_bytes().decode("utf-8")
    crlf = "\r\n" in raw
    text = raw.replace("\r\n", "\n") if crlf else raw
    old, new = call.old, call.new
    if settings.strip_fences:
        old, new = strip_fences(old), strip_fences(new)
    old, new = old.replace("\r\n", "\n"), new.replace("\r\n", "\n")
    try:
        result = apply_edit(text, old, new, fuzzy=settings.fuzzy_edit, threshold=settings.fuzzy_threshold)
    except ToolError as exc:
        raise ToolError(f"edit {rel}: {exc}") from exc
    out = result.text.replace("\n", "\r\n") if crlf else result.text
    path.write_bytes(out.encode("utf-8"))

    m = result.match
    how = {"exact": "exact match", "whitespace": "match ignoring whitespace"}.get(
        m.strategy, f"fuzzy match, similarity {m.score:.1f}"
    )
    old_range = f"line {m.start + 1}" if m.end - m.start == 1 else f"lines {m.start + 1}-{m.end}"
    if result.new_end >= result.new_start:
        new_range = (
            f"now line {result.new_start}"
            if result.new_end == result.new_start
            else f"now lines {result.new_start}-{result.new_end}"
        )
    else:
        new_range = "deleted"
    new_lines = result.text.split("\n")
    lo = max(1, result.new_start - _CONTEXT_BEFORE)
    hi = min(len(new_lines), max(result.new_end, result.new_start) + _CONTEXT_AFTER)
    context = number_lines(new_lines[lo - 1 : hi], lo) if hi >= lo else ""
    output = f"edited {rel} ({how}): {old_range} replaced, {new_range}\n{context}"
    return ToolOutcome(ok=True, output=output.rstrip("\n"), duration_s=0.0, changed_files=[rel])


# ---------------------------------------------------------------------------- bash


#: a workspace whose stat walk takes less than this is walked on the event loop's thread
_INLINE_SNAPSHOT_S = 0.002
_inline_snapshots: weakref.WeakSet[Workspace] = weakref.WeakSet()


async def _snapshot(ws: Workspace) -> dict[str, tuple[int, int]]:
    """The workspace's stat snapshot. A small workspace (a koan's) is walked inline: the hop to
    a thread and back costs more than the walk; a large repository is walked in a thread so the
    loop (the TUI's) keeps running."""
    if ws in _inline_snapshots:
        return ws.stat_snapshot()

    def timed() -> tuple[dict[str, tuple[int, int]], float]:
        started = time.perf_counter()
        snap = ws.stat_snapshot()
        return snap, time.perf_counter() - started

    snap, took = await asyncio.to_thread(timed)
    if took < _INLINE_SNAPSHOT_S:
        _inline_snapshots.add(ws)
    return snap


_envs: weakref.WeakKeyDictionary[Sandbox, dict[str, str]] = weakref.WeakKeyDictionary()


def command_env(sandbox: Sandbox) -> dict[str, str]:
    """The environment of a model's command (and of the tests that score it), built once per sandbox."""
    env = _envs.get(sandbox)
    if env is None:
        env = _envs[sandbox] = _command_env(sandbox)
    return env


def _command_env(sandbox: Sandbox) -> dict[str, str]:
    # The workspace's tests must run with the interpreter (and pytest) this process runs on.
    bin_dir = str(Path(sys.executable).parent)
    extra = {
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", os.defpath)]),
        "PYTHONDONTWRITEBYTECODE": "1",
        # Looper's own pytest plugins (textual snapshots, asyncio) are not the task's: skip
        # loading them, which also makes each pytest start several times faster.
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1"),
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
        "PAGER": "cat",
        "GIT_PAGER": "cat",
        "TERM": "dumb",
    }
    return sandbox.env(extra)


async def _bash(call: BashCall, ws: Workspace, settings: ToolSettings, sandbox: Sandbox | None) -> ToolOutcome:
    command = call.command.strip()
    if not command:
        raise ToolError("the <bash> command is empty; e.g. <bash>pytest -q</bash>")
    before = await _snapshot(ws)
    box = sandbox or Sandbox(ws.root, SandboxSettings(mode="none"))
    shell = shutil.which("bash") or "/bin/sh"
    # Its own process group, killed at the end with whatever it left running (a `server &`, a
    # hung child, everything on a timeout or a cancel); in a sandbox, setsid daemons too.
    result = await box.run(
        [shell, "-c", command], cwd=ws.root, env=command_env(box), timeout_s=settings.bash_timeout_s,
        head=_STREAM_KEEP, tail=_STREAM_KEEP,
    )
    if result.error:
        return _failed(f"the command could not start: {result.error}")
    timed_out, leftovers, code = result.timed_out, result.leftovers, result.returncode

    text = strip_ansi(result.text())
    if "\r" in text:
        # A progress bar redraws its line with \r; only its last state means anything.
        text = "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))
    text, truncated = cap_output(text.rstrip("\n"), settings.output_cap_chars, hidden=result.dropped)
    if timed_out:
        status = f"[timed out after {settings.bash_timeout_s:g}s (process group killed)]"
        exit_code = None
    elif code is not None and -code in _LIMIT_SIGNALS:
        status = f"[killed by signal {-code}: {_LIMIT_SIGNALS[-code]}]"
    elif code is not None and code < 0:
        status = f"[killed by signal {-code}]"
        exit_code = code
    else:
        status = f"[exit code {code}]"
        exit_code = code
    notes = [status]
    if leftovers and not timed_out:
        notes.append("[background processes the command left running were killed]")
    after = await _snapshot(ws)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    output = "\n".join([text if text else "(no output)", *notes])
    return ToolOutcome(
        ok=not timed_out and exit_code == 0,
        output=output,
        exit_code=exit_code,
        truncated=truncated,
        duration_s=0.0,
        changed_files=changed,
    )
