"""Chat messages as the agent, the backends and the training data all see them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    role: Role
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


def as_dicts(messages: list[Message]) -> list[dict[str, str]]:
    return [m.as_dict() for m in messages]
