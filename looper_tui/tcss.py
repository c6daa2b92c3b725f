"""Widgets keep their styles in a `.tcss` file beside their module, like the screens."""

from __future__ import annotations

from pathlib import Path


def beside(module_file: str) -> str:
    return Path(module_file).with_suffix(".tcss").read_text(encoding="utf-8")
