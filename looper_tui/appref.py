"""What a screen may read of the lab it is shown in: the lab itself (store, bus, state,
controls), the clock and the settings, through a narrow typed view of the app. Screens act
through the messages in `looper_tui.messages`; nothing here lets them call the app."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from textual.dom import DOMNode

if TYPE_CHECKING:
    from looper_engine.evaluation.minilab import MiniLabSettings
    from looper_tui.lab import Lab
    from looper_tui.settings import Settings


class LabContext(Protocol):
    lab: Lab
    settings: Settings
    clock: Callable[[], float]
    adapters_dir: Path
    minilab: MiniLabSettings


def lab_context(node: DOMNode) -> LabContext:
    return cast(LabContext, node.app)
