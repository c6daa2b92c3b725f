"""The token budget and context pruning.

History layout: [system, task, turn, turn, ...] where turns alternate assistant output and
observation. When the context would exceed the budget, old observations are elided first
(their text replaced by a short marker), then the oldest turns are dropped behind a single
marker. The system prompt, the task and the last `keep_last_turns` turns are never touched.

Both cut points only move forward, so the work per step is amortised O(1) however long the
episode gets; an edit of the history resets them. `context_view.render_context` is the pure
function that turns (history, cut points) into what the model sees; replay uses it too.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from looper_engine.chat import Message
from looper_engine.context_view import HEAD, dropped_marker, elided_marker


class ContextInfo(BaseModel):
    n_messages: int
    dropped_upto: int
    elided_upto: int
    tokens: int
    budget: int
    pruned_turns: int


class ContextWindow:
    def __init__(
        self,
        count: Callable[[Message], int],
        budget: int,
        keep_last_turns: int,
        pruning: bool = True,
    ) -> None:
        self._count = count
        self.budget = budget
        self.keep_messages = 2 * keep_last_turns
        self.pruning = pruning
        self.history: list[Message] = []
        self._tokens: list[int] = []
        self._elided_tokens: list[int] = []
        self._elided_view: list[Message] = []
        self.dropped_upto = HEAD
        self.elided_upto = HEAD
        self._total = 0
        self._pruned = 0
        self._pruned_upto = HEAD
        self._marker_tokens = 0
        self._marker_for = 0

    def reset(self, messages: list[Message]) -> None:
        """Replace the whole history (start, or after a user edit)."""
        self.history = []
        self._tokens = []
        self._elided_tokens = []
        self._elided_view: list[Message] = []
        self.dropped_upto = HEAD
        self.elided_upto = HEAD
        self._total = 0
        self._pruned = 0
        self._pruned_upto = HEAD
        for m in messages:
            self.append(m)

    def append(self, message: Message) -> None:
        n = self._count(message)
        self.history.append(message)
        self._tokens.append(n)
        if message.role == "user":
            marker = Message(role="user", content=elided_marker(message.content))
            self._elided_view.append(marker)
            self._elided_tokens.append(self._count(marker))
        else:
            self._elided_view.append(message)
            self._elided_tokens.append(n)
        self._total += n

    @property
    def system_prompt(self) -> str:
        return self.history[0].content if self.history else ""

    def _contribution(self, i: int) -> int:
        if i < self.elided_upto and self.history[i].role == "user":
            return self._elided_tokens[i]
        return self._tokens[i]

    def _marker(self) -> int:
        dropped = self.dropped_upto - HEAD
        if dropped <= 0:
            return 0
        if self._marker_for != dropped:
            self._marker_for = dropped
            self._marker_tokens = self._count(Message(role="user", content=dropped_marker(dropped)))
        return self._marker_tokens

    def tokens(self) -> int:
        return self._total + self._marker()

    def build(self) -> tuple[list[Message], ContextInfo]:
        if self.pruning:
            protected = max(HEAD, len(self.history) - self.keep_messages)
            while self.tokens() > self.budget and self.elided_upto < protected:
                i = self.elided_upto
                if i >= self.dropped_upto:
                    self._total -= self._tokens[i] - self._contribution_if_elided(i)
                self.elided_upto += 1
            while self.tokens() > self.budget and self.dropped_upto < protected:
                self._total -= self._contribution(self.dropped_upto)
                self.dropped_upto += 1
        messages = self._render()
        info = ContextInfo(
            n_messages=len(self.history),
            dropped_upto=self.dropped_upto,
            elided_upto=self.elided_upto,
            tokens=self.tokens(),
            budget=self.budget,
            pruned_turns=self.pruned_turns(),
        )
        return messages, info

    def _render(self) -> list[Message]:
        """render_context() over cached marker messages: slices, no new objects per step."""
        out = self.history[:HEAD]
        if self.dropped_upto > HEAD:
            out.append(Message(role="user", content=dropped_marker(self.dropped_upto - HEAD)))
        start = max(self.dropped_upto, HEAD)
        cut = max(start, min(self.elided_upto, len(self.history)))
        out.extend(self._elided_view[start:cut])
        out.extend(self.history[cut:])
        return out

    def _contribution_if_elided(self, i: int) -> int:
        return self._elided_tokens[i] if self.history[i].role == "user" else self._tokens[i]

    def pruned_turns(self) -> int:
        """Turns (assistant + observation) whose observation was elided or dropped."""
        upto = max(self.elided_upto, self.dropped_upto)
        while self._pruned_upto < upto:
            if self.history[self._pruned_upto].role == "user":
                self._pruned += 1
            self._pruned_upto += 1
        return self._pruned
