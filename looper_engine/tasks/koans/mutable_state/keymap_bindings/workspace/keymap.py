"""Keyboard shortcuts for the editor: bind keys to commands."""

from typing import Callable


class Keymap:
    def __init__(self) -> None:
        self._bindings: dict[str, Callable[[], str]] = {}

    def bind(self, key: str, action: Callable[[], str]) -> None:
        self._bindings[key] = action

    def keys(self) -> list[str]:
        return sorted(self._bindings)

    def press(self, key: str) -> str:
        try:
            action = self._bindings[key]
        except KeyError:
            return f"{key} is not bound"
        return action()


def run_command(name: str) -> str:
    return f"ran {name}"


def default_keymap(commands: list[str]) -> Keymap:
    """Bind ctrl+1 .. ctrl+N to the given commands, in order."""
    keymap = Keymap()
    for index, name in enumerate(commands, start=1):
        keymap.bind(f"ctrl+{index}", lambda: run_command(name))
    return keymap
