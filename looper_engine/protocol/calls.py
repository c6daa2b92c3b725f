"""Typed tool calls. A parsed model output becomes exactly one of these."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field


class BashCall(BaseModel):
    tool: Literal["bash"] = "bash"
    command: str

    def target(self) -> str:
        return self.command.splitlines()[0][:60] if self.command else ""


class ReadCall(BaseModel):
    tool: Literal["read"] = "read"
    path: str
    start: int | None = None  # 1-based, inclusive
    end: int | None = None  # 1-based, inclusive

    def target(self) -> str:
        if self.start is None:
            return self.path
        return f"{self.path}:{self.start}-{self.end if self.end is not None else ''}"


class WriteCall(BaseModel):
    tool: Literal["write"] = "write"
    path: str
    content: str

    def target(self) -> str:
        return self.path


class EditCall(BaseModel):
    tool: Literal["edit"] = "edit"
    path: str
    old: str
    new: str

    def target(self) -> str:
        return self.path


class DoneCall(BaseModel):
    tool: Literal["done"] = "done"
    summary: str = ""

    def target(self) -> str:
        return self.summary[:60]


ToolCall = Annotated[
    Union[BashCall, ReadCall, WriteCall, EditCall, DoneCall], Field(discriminator="tool")
]
TOOL_NAMES: tuple[str, ...] = ("bash", "read", "write", "edit", "done")
