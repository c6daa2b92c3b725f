"""Small, pure formatting helpers shared by the screens: durations, ages, token counts,
status glyphs and the theme-aware styles for them, and XML tool-tag highlighting."""

from __future__ import annotations

import re

from textual.content import Content, Span

STATUS_GLYPH: dict[str, str] = {
    "resolved": "✓",
    "failed": "✗",
    "cancelled": "⊘",
    "errored": "!",
    "interrupted": "~",
    "running": "●",
    "paused": "‖",
    "waiting": "·",
    "finished": "✓",
}

#: Content styles (theme variables resolve when drawn, so a theme switch recolours them).
STATUS_STYLE: dict[str, str] = {
    "resolved": "$success bold",
    "finished": "$success",
    "failed": "$error",
    "cancelled": "$warning",
    "errored": "$error bold",
    "interrupted": "$warning",
    "running": "$primary",
    "paused": "$warning bold",
    "waiting": "$foreground-muted",
}

#: A step's status in the timeline.
STEP_STYLE: dict[str, str] = {
    "ok": "$success",
    "failed": "$error",
    "malformed": "$warning",
    "done": "$success bold",
    "running": "$primary",
    "thinking": "$foreground-muted",
    "parsing": "$foreground-muted",
}


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fmt_clock(seconds: float) -> str:
    """Elapsed time as mm:ss (or h:mm:ss)."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def fmt_age(then: float, now: float) -> str:
    delta = max(0.0, now - then)
    if delta < 60:
        return f"{int(delta)}s ago"
    if delta < 3600:
        return f"{int(delta // 60)}m ago"
    if delta < 86400:
        return f"{int(delta // 3600)}h ago"
    return f"{int(delta // 86400)}d ago"


def fmt_tokens(n: int | None) -> str:
    if n is None:
        return "—"
    if n < 10_000:
        return f"{n:,}"
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def short_task(task_id: str) -> str:
    """The last part of a task id: `koans/off_by_one/range_end` -> `range_end`."""
    return task_id.rstrip("/").rsplit("/", 1)[-1] or task_id


def ellipsize(text: str, width: int) -> str:
    text = " ".join(text.split())
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…"


_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")


def clean_text(text: str) -> str:
    """Tool output as plain text: terminal escape codes and control characters removed,
    tabs expanded (so that styled spans keep their offsets)."""
    return _CONTROL.sub("", text.replace("\r\n", "\n")).expandtabs(4)


# --- XML tool tags --------------------------------------------------------------------

TOOL_TAGS = ("bash", "read", "write", "edit", "done", "old", "new")
_TAG = re.compile(r"</?(?:" + "|".join(TOOL_TAGS) + r")\b[^<>]*?/?>")
_ATTR = re.compile(r'(\w+)=("[^"]*"|\'[^\']*\')')


def highlight_xml(text: str, base_style: str = "") -> Content:
    """The model's output with its tool tags (and their attributes) picked out."""
    text = clean_text(text)
    spans: list[Span] = [Span(0, len(text), base_style)] if base_style and text else []
    for match in _TAG.finditer(text):
        start, end = match.span()
        spans.append(Span(start, end, "$looper-tag bold"))
        for attr in _ATTR.finditer(match.group(0)):
            spans.append(Span(start + attr.start(2), start + attr.end(2), "$looper-attr not bold"))
    return Content(text, spans)
