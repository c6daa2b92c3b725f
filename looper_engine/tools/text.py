"""Small text helpers shared by the tools: fence stripping, output capping, line numbering."""

from __future__ import annotations

import re

_OPEN_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[\w.+#-]*[ \t]*$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def strip_fences(s: str) -> str:
    """Remove one ``` fence pair that wraps the whole body, keeping the inner text verbatim.

    Models often wrap file bodies in Markdown fences out of habit; written to disk the fence
    lines would break the file. A fence that only wraps part of the body is left alone, since
    it may be real content (a Markdown file with a code sample)."""
    stripped = s.strip("\n")
    lines = stripped.split("\n")
    if len(lines) < 2:
        return s
    opening = _OPEN_FENCE.match(lines[0])
    if opening is None:
        return s
    marker = opening.group(1)
    closing = lines[-1].strip()
    if not (closing.startswith(marker[0] * 3) and set(closing) == {marker[0]} and len(closing) >= len(marker)):
        return s
    inner = lines[1:-1]
    if not inner:
        return ""
    return "\n".join(inner) + "\n"


def elision_marker(n: int) -> str:
    return f"[... {n} characters elided ...]"


def cap_output(s: str, limit: int, hidden: int = 0) -> tuple[str, bool]:
    """Keep at most about ``limit`` characters of ``s``: its head and its tail around a marker.

    The head usually holds the command's first error and the tail its summary (pytest's
    short test summary, a traceback's last frame), so both ends are worth more than the
    middle. ``hidden`` counts characters already dropped from the middle before ``s`` was
    built (a stream too large to keep whole); they are added to the marker's count.
    Returns the text and whether anything was elided."""
    if len(s) <= limit and hidden == 0:
        return s, False
    if len(s) <= limit:
        head, tail = _split_at_newline(s, len(s) // 2)
        return f"{head}\n{elision_marker(hidden)}\n{tail}", True
    head_len = limit // 2
    tail_len = limit - head_len
    head = s[:head_len]
    tail = s[len(s) - tail_len :]
    # Cut at line boundaries when one is near, so no half lines appear around the marker.
    cut = head.rfind("\n")
    if cut >= head_len * 3 // 4:
        head = head[:cut]
    else:
        head = head.rstrip("\n")
    cut = tail.find("\n")
    if 0 <= cut <= tail_len // 4:
        tail = tail[cut + 1 :]
    elided = len(s) - len(head) - len(tail) + hidden
    return f"{head}\n{elision_marker(elided)}\n{tail}", True


def _split_at_newline(s: str, at: int) -> tuple[str, str]:
    cut = s.rfind("\n", 0, at)
    if cut < 0:
        return s[:at], s[at:]
    return s[:cut], s[cut + 1 :]


def strip_ansi(s: str) -> str:
    """Drop terminal escape sequences: colours are noise in a model's observation."""
    return _ANSI.sub("", s)


def number_lines(lines: list[str], first: int, width: int | None = None) -> str:
    """Render lines as ``   12 | code``, numbered from ``first`` (1-based)."""
    last = first + len(lines) - 1
    w = width if width is not None else max(5, len(str(last)))
    return "\n".join(f"{first + i:>{w}} | {line}" for i, line in enumerate(lines))
