"""Typed access to the running LooperApp from a screen or widget (without importing the
app module at run time, which imports the screens)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.dom import DOMNode

if TYPE_CHECKING:
    from looper_tui.app import LooperApp


def looper_app(node: DOMNode) -> LooperApp:
    return cast("LooperApp", node.app)
