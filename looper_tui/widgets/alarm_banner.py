"""A loop alarm, impossible to miss: a banner over the live view naming the loop."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from looper_engine.events import LoopAlarm
from looper_tui.state import loop_name
from looper_tui.tcss import beside


class AlarmBanner(Static):
    DEFAULT_CSS = beside(__file__)

    def show(self, alarm: LoopAlarm | None, count: int = 1) -> None:
        if alarm is None:
            self.display = False
            return
        more = f"  ({count} alarms in this episode)" if count > 1 else ""
        self.update(
            Content.assemble(
                ("⚠ LOOP DETECTED ", "bold"),
                (f"— {loop_name(alarm.loop)} at step {alarm.step}: ", "bold"),
                alarm.detail,
                (more, "italic"),
            )
        )
        self.display = True
