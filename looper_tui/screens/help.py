"""`?`: every key of every screen, in one place."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

SECTIONS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Everywhere",
        [
            ("?", "this help"),
            ("ctrl+p", "command palette: every action, themes, open an episode by id"),
            ("escape", "back"),
            ("ctrl+q", "quit (running episodes are cancelled and recorded)"),
        ],
    ),
    (
        "Lab home",
        [
            ("n", "new run: suite, tasks, model, concurrency, framework switches"),
            ("d", "demo run: the koans with scripted:oracle at a watchable rate"),
            ("enter", "open the run or episode under the cursor (live, or its history)"),
            ("h", "history (step-by-step replay) of the episode under the cursor"),
            ("tab", "move between the runs and the episodes"),
            ("r", "reload from the database"),
        ],
    ),
    (
        "Live episode",
        [
            ("space", "pause / resume (the pause takes effect at the next step boundary)"),
            ("n", "run exactly one more tool call, then pause"),
            ("e", "edit the system prompt and pending messages (while paused)"),
            ("c", "cancel the episode (it stays recorded, as cancelled)"),
            ("t", "training: consolidate episodes into a LoRA adapter"),
            ("[ / ]", "previous / next episode of the run"),
            ("o", "expand or fold the newest tool output"),
            ("h", "history of this episode"),
        ],
    ),
    (
        "History and replay",
        [
            ("← → or j k", "previous / next step"),
            ("home / end", "first / last step"),
            ("x", "show or hide the context the model saw"),
            ("f", "resume from here: fork a new episode after this step"),
        ],
    ),
    (
        "Edit prompt",
        [
            ("ctrl+s", "save: the next model call uses the edit"),
            ("escape", "discard the edit"),
        ],
    ),
]


def help_content() -> Content:
    parts: list[Content] = []
    for title, keys in SECTIONS:
        parts.append(Content(title).stylize("bold $accent"))
        for key, what in keys:
            parts.append(Content.assemble(("  " + key.ljust(12), "bold $primary"), what))
        parts.append(Content(""))
    return Content("\n").join(parts[:-1])


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "help.tcss"
    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = "Keys"
            box.border_subtitle = "escape closes"
            yield Static(help_content(), id="help-text")
