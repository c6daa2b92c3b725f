"""What the model sees of a history, given the pruning cut points.

History layout: [system, task, turn, turn, ...]. Messages [HEAD, dropped_upto) are replaced by
one marker; observations before `elided_upto` keep their place with their text elided. Pure
and free of the agent, so the store can rebuild any step's context from recorded events.
"""

from __future__ import annotations

from looper_engine.chat import Message

HEAD = 2  # system prompt and task


def elided_marker(text: str) -> str:
    return f"[output elided to save context: {len(text)} characters]"


def dropped_marker(count: int) -> str:
    return f"[{count} earlier messages elided to fit the token budget]"


def render_context(history: list[Message], dropped_upto: int, elided_upto: int) -> list[Message]:
    head = history[:HEAD]
    out = list(head)
    if dropped_upto > HEAD:
        out.append(Message(role="user", content=dropped_marker(dropped_upto - HEAD)))
    for i in range(max(dropped_upto, HEAD), len(history)):
        msg = history[i]
        if i < elided_upto and msg.role == "user":
            out.append(Message(role="user", content=elided_marker(msg.content)))
        else:
            out.append(msg)
    return out
