"""`e` while paused: edit the system prompt and the pending messages. Saving hands them to
`EpisodeControl.edit`, so the next model call sees exactly this."""

from __future__ import annotations

import re

from pydantic import BaseModel
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static, TabbedContent, TabPane, TextArea

from looper_engine.chat import Message

_MARKER = re.compile(r"^=== (user|assistant) ===[ \t]*$", re.M)


class PromptEdit(BaseModel):
    """What the user changed; None for a part left as it was."""

    system_prompt: str | None = None
    messages: list[Message] | None = None


def messages_to_text(messages: list[Message]) -> str:
    return "\n".join(f"=== {m.role} ===\n{m.content}" for m in messages)


def text_to_messages(text: str) -> list[Message]:
    """Parse the message editor's text back. ValueError, one line, when it is not in the
    `=== role ===` form."""
    matches = list(_MARKER.finditer(text))
    if not matches:
        raise ValueError("no '=== user ===' line: each message starts with '=== user ===' or '=== assistant ==='")
    if text[: matches[0].start()].strip():
        raise ValueError("text before the first '=== user ===' line belongs to no message")
    messages = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[match.end() : end].removeprefix("\n")
        if i + 1 < len(matches):
            body = body.removesuffix("\n")
        messages.append(Message(role=match.group(1), content=body))  # type: ignore[arg-type]
    if messages[0].role != "user":
        raise ValueError("the first message must be the task ('=== user ===')")
    return messages


class EditPromptScreen(ModalScreen[PromptEdit | None]):
    CSS_PATH = "edit_prompt.tcss"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "discard", "Discard", priority=True),
    ]

    def __init__(self, system_prompt: str, messages: list[Message], *, step: int = 0) -> None:
        super().__init__()
        self.system_prompt = system_prompt
        self.messages = messages
        self.step = step
        self._messages_text = messages_to_text(messages)

    def compose(self) -> ComposeResult:
        blink = getattr(self.app, "blink", True)
        with Vertical(id="edit-box") as box:
            box.border_title = f"Edit the prompt (paused at step {self.step})"
            with TabbedContent(id="edit-tabs"):
                with TabPane("System prompt", id="tab-system"):
                    area = TextArea(self.system_prompt, id="edit-system", soft_wrap=True)
                    area.cursor_blink = blink
                    yield area
                with TabPane(f"Messages ({len(self.messages)})", id="tab-messages"):
                    area = TextArea(self._messages_text, id="edit-messages", soft_wrap=True)
                    area.cursor_blink = blink
                    yield area
            yield Static("", id="edit-error")
            yield Static(
                "ctrl+s saves: the next model call uses it · escape discards · "
                "each message starts with a line '=== user ===' or '=== assistant ==='",
                id="edit-hint",
            )
            with Vertical(id="edit-buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="primary", compact=True)
                yield Button("Discard (esc)", id="discard", compact=True)

    def on_mount(self) -> None:
        self.query_one("#edit-system", TextArea).focus()

    def action_save(self) -> None:
        system_text = self.query_one("#edit-system", TextArea).text
        messages_text = self.query_one("#edit-messages", TextArea).text
        edit = PromptEdit()
        if system_text != self.system_prompt:
            if not system_text.strip():
                self._error("the system prompt is empty")
                return
            edit.system_prompt = system_text
        if messages_text != self._messages_text:
            try:
                edit.messages = text_to_messages(messages_text)
            except ValueError as exc:
                self._error(f"messages: {exc}")
                self.query_one("#edit-tabs", TabbedContent).active = "tab-messages"
                return
        self.dismiss(edit)

    def _error(self, text: str) -> None:
        error = self.query_one("#edit-error", Static)
        error.update(text)
        error.display = True

    def action_discard(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#discard")
    def _discard_pressed(self) -> None:
        self.action_discard()
