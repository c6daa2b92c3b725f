"""The step timeline: one row per step (tool, target, status, duration, tokens, alarm).

A line-API widget: it draws only the rows on screen and asks its source for just those,
so a 10,000-step episode costs the same to show as a 10-step one. The source may answer
"not loaded yet" (None) for a row; it fetches the page and the owner calls `refresh_rows`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from looper_tui.format import ellipsize, fmt_duration, fmt_tokens
from looper_tui.tcss import beside


@dataclass(slots=True)
class StepLine:
    step: int
    tool: str
    target: str
    status: str
    duration_s: float | None
    tokens: int | None
    alarm: str | None = None


class StepSource(Protocol):
    def __len__(self) -> int: ...

    def line(self, index: int) -> StepLine | None:
        """Row `index` (0-based), or None while it is being loaded."""
        ...


class EmptySource:
    def __len__(self) -> int:
        return 0

    def line(self, index: int) -> StepLine | None:
        return None


STATUS_WORD = {
    "ok": "✓ ok",
    "failed": "✗ failed",
    "malformed": "? malformed",
    "done": "✓ done",
    "running": "● running",
    "thinking": "… thinking",
    "parsing": "… parsing",
}

_STEP_W, _TOOL_W, _STATUS_W, _TIME_W, _TOK_W = 5, 6, 11, 6, 6


class StepTable(ScrollView, can_focus=True):
    DEFAULT_CSS = beside(__file__)
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "step-table--header",
        "step-table--cursor",
        "step-table--muted",
        "step-table--ok",
        "step-table--failed",
        "step-table--malformed",
        "step-table--running",
        "step-table--alarm",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("enter", "select", "Select", show=False),
    ]

    cursor: reactive[int] = reactive(0, always_update=False)

    class Highlighted(Message):
        """The cursor moved to `index` (0-based row)."""

        def __init__(self, table: StepTable, index: int) -> None:
            super().__init__()
            self.table = table
            self.index = index

        @property
        def control(self) -> StepTable:
            return self.table

    class Selected(Highlighted):
        """Enter (or a click) on row `index`."""

    def __init__(self, source: StepSource | None = None, *, follow: bool = False, id: str | None = None) -> None:  # noqa: A002 - Textual names it id
        super().__init__(id=id)
        self.source: StepSource = source or EmptySource()
        #: Keep the cursor on the newest row as rows arrive (live view), until the user moves it.
        self.follow = follow
        self._rows = 0

    # --- data ---------------------------------------------------------------------

    def set_source(self, source: StepSource, cursor: int | None = None) -> None:
        self.source = source
        self._rows = -1
        self.refresh_rows(cursor)

    def refresh_rows(self, cursor: int | None = None) -> None:
        """The source changed (rows added, a page loaded); redraw."""
        rows = len(self.source)
        grew = rows != self._rows
        self._rows = rows
        if grew:
            self.virtual_size = Size(self.size.width, rows + 1)
        if cursor is not None:
            self.move_to(cursor)
        elif self.follow and rows:
            self.move_to(rows - 1, announce=grew)
        elif self.cursor >= rows:
            self.move_to(max(0, rows - 1))
        self.refresh()

    @property
    def row_count(self) -> int:
        return self._rows if self._rows >= 0 else 0

    # --- cursor -------------------------------------------------------------------

    def move_to(self, index: int, *, announce: bool = True) -> None:
        rows = self.row_count
        index = max(0, min(index, rows - 1)) if rows else 0
        changed = index != self.cursor
        self.cursor = index
        self._scroll_cursor_into_view()
        if announce and (changed or rows):
            self.post_message(self.Highlighted(self, index))

    def _scroll_cursor_into_view(self) -> None:
        visible = max(1, self.scrollable_content_region.height - 1)
        top = int(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + visible:
            self.scroll_to(y=self.cursor - visible + 1, animate=False, immediate=True)

    def watch_cursor(self, old: int, new: int) -> None:
        self.refresh()

    def _user_moved(self, index: int) -> None:
        self.follow = index >= self.row_count - 1
        self.move_to(index)

    def action_cursor_up(self) -> None:
        self._user_moved(self.cursor - 1)

    def action_cursor_down(self) -> None:
        self._user_moved(self.cursor + 1)

    def action_page_up(self) -> None:
        self._user_moved(self.cursor - max(1, self.scrollable_content_region.height - 2))

    def action_page_down(self) -> None:
        self._user_moved(self.cursor + max(1, self.scrollable_content_region.height - 2))

    def action_first(self) -> None:
        self._user_moved(0)

    def action_last(self) -> None:
        self._user_moved(self.row_count - 1)

    def action_select(self) -> None:
        if self.row_count:
            self.post_message(self.Selected(self, self.cursor))

    def on_click(self, event: events.Click) -> None:
        y = event.y
        if y <= 0:
            return
        index = int(self.scroll_y) + y - 1
        if 0 <= index < self.row_count:
            self._user_moved(index)
            self.post_message(self.Selected(self, index))

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, self.row_count + 1)
        self._scroll_cursor_into_view()

    # --- drawing ------------------------------------------------------------------

    def _columns(self, width: int) -> tuple[int, int]:
        """Widths of the target column and whether the tokens column fits."""
        fixed = _STEP_W + 1 + _TOOL_W + 1 + _STATUS_W + 1 + _TIME_W
        with_tokens = width - fixed - (1 + _TOK_W) >= 8
        target = width - fixed - 1 - ((1 + _TOK_W) if with_tokens else 0)
        return max(0, target), int(with_tokens)

    def _row_segments(self, line: StepLine | None, index: int, width: int) -> list[Segment]:
        target_w, with_tokens = self._columns(width)
        base = self.rich_style
        muted = self.get_component_rich_style("step-table--muted")
        if line is None:
            cells = [(f"{index + 1:>{_STEP_W}} ", muted), ("loading…", muted)]
        else:
            status_style = {
                "ok": "step-table--ok",
                "done": "step-table--ok",
                "failed": "step-table--failed",
                "malformed": "step-table--malformed",
                "running": "step-table--running",
            }.get(line.status, "step-table--muted")
            status = STATUS_WORD.get(line.status, line.status)
            cells = [
                (f"{line.step:>{_STEP_W}} ", muted),
                (f"{ellipsize(line.tool, _TOOL_W):<{_TOOL_W}} ", base),
                (f"{ellipsize(line.target, target_w):<{target_w}} ", base),
            ]
            if line.alarm:
                word = ellipsize(f"⚠ {line.alarm}", _STATUS_W)
                cells.append((f"{word:<{_STATUS_W}} ", self.get_component_rich_style("step-table--alarm")))
            else:
                cells.append((f"{status:<{_STATUS_W}} ", self.get_component_rich_style(status_style)))
            cells.append((f"{fmt_duration(line.duration_s):>{_TIME_W}}", muted))
            if with_tokens:
                cells.append((f" {fmt_tokens(line.tokens):>{_TOK_W}}", muted))
        segments = [Segment(text, style) for text, style in cells]
        if index == self.cursor:
            cursor = self.get_component_rich_style("step-table--cursor")
            if not self.has_focus:
                cursor = cursor + Style(dim=True)
            segments = [Segment(seg.text, (seg.style or Style()) + cursor) for seg in segments]
        return segments

    def _header_segments(self, width: int) -> list[Segment]:
        target_w, with_tokens = self._columns(width)
        text = f"{'step':>{_STEP_W}} {'tool':<{_TOOL_W}} {'target':<{target_w}} {'status':<{_STATUS_W}} {'time':>{_TIME_W}}"
        if with_tokens:
            text += f" {'tokens':>{_TOK_W}}"
        return [Segment(text, self.get_component_rich_style("step-table--header"))]

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if y == 0:
            segments = self._header_segments(width)
        else:
            index = int(self.scroll_y) + y - 1
            if index >= self.row_count:
                return Strip.blank(width, self.rich_style)
            segments = self._row_segments(self.source.line(index), index, width)
        strip = Strip(segments)
        return strip.adjust_cell_length(width, self.rich_style)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
