"""Loop detection: the same call repeated, the same file read too often, no progress.

Each alarm is raised once per loop (it re-arms when the agent breaks out) and comes with a
message for the model saying what it is doing and what to try instead."""

from __future__ import annotations

from pydantic import BaseModel

from looper_engine.config import AgentConfig


class Alarm(BaseModel):
    loop: str  # "repeated_call" | "repeated_read" | "no_progress"
    detail: str
    advice: str


class LoopDetector:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self._last_key: str | None = None
        self._repeat = 0
        self._reads: dict[str, int] = {}
        self._since_change = 0
        self._alarmed: set[str] = set()

    def observe(self, tool: str, key: str, path: str | None, changed: bool) -> list[Alarm]:
        """Record one executed call. `key` identifies the call exactly; `path` is the file a
        read touched; `changed` says whether the workspace changed during this step."""
        alarms: list[Alarm] = []
        cfg = self.config
        if key == self._last_key:
            self._repeat += 1
        else:
            self._last_key, self._repeat = key, 1
            self._alarmed.discard("repeated_call")
        if self._repeat >= cfg.repeat_call_limit and "repeated_call" not in self._alarmed:
            self._alarmed.add("repeated_call")
            alarms.append(
                Alarm(
                    loop="repeated_call",
                    detail=f"the same {tool} call {self._repeat} times in a row",
                    advice="Its output will not change. Do something different: edit the code, "
                    "read another part, or finish with <done>.",
                )
            )
        if changed:
            self._reads.clear()
            self._since_change = 0
            self._alarmed.discard("no_progress")
            self._alarmed.discard("repeated_read")
        else:
            self._since_change += 1
        if tool == "read" and path is not None:
            n = self._reads.get(path, 0) + 1
            self._reads[path] = n
            tag = "repeated_read"
            if n >= cfg.same_file_read_limit and tag not in self._alarmed:
                self._alarmed.add(tag)
                alarms.append(
                    Alarm(
                        loop="repeated_read",
                        detail=f"{path} read {n} times without any change in between",
                        advice="You have its content above. Make your edit now, or read a line range "
                        "you have not seen.",
                    )
                )
        if self._since_change >= cfg.no_progress_steps and "no_progress" not in self._alarmed:
            self._alarmed.add("no_progress")
            alarms.append(
                Alarm(
                    loop="no_progress",
                    detail=f"{self._since_change} steps without changing any file",
                    advice="Decide on a fix and apply it with <edit>, or finish with <done> "
                    "if the bug is fixed.",
                )
            )
        return alarms


def alarm_text(alarms: list[Alarm]) -> str:
    return "\n".join(f"[loop detected: {a.detail}] {a.advice}" for a in alarms)
