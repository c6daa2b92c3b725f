"""A run: many episodes of one model on a list of tasks, `concurrency` at a time."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from pydantic import BaseModel

from looper_engine.agent.control import EpisodeControl
from looper_engine.agent.episode import Episode, EpisodeResult
from looper_engine.config import AgentConfig
from looper_engine.events import EventBus, RunFinished, RunStarted
from looper_engine.models.base import Backend
from looper_engine.tasks.model import Task


def new_run_id() -> str:
    return "run-" + time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]


class RunResult(BaseModel):
    run_id: str
    status: str
    episodes: list[EpisodeResult]
    duration_s: float

    @property
    def resolved(self) -> int:
        return sum(e.resolved for e in self.episodes)


class Runner:
    """Create, then `await run()`. `episodes` and their controls exist from construction,
    so a UI can attach to any of them before they start."""

    def __init__(
        self,
        tasks: list[Task],
        backend: Backend,
        config: AgentConfig,
        bus: EventBus,
        *,
        suite: str = "koans",
        concurrency: int = 1,
        run_id: str | None = None,
        name: str = "",
        start_paused: bool = False,
        workspace_parent: Path | None = None,
    ) -> None:
        self.tasks = tasks
        self.backend = backend
        self.config = config
        self.bus = bus
        self.suite = suite
        self.concurrency = max(1, concurrency)
        self.run_id = run_id or new_run_id()
        self.name = name
        self.episodes: list[Episode] = [
            Episode(
                task,
                backend,
                config,
                bus,
                run_id=self.run_id,
                control=EpisodeControl(start_paused=start_paused),
                workspace_parent=workspace_parent,
            )
            for task in tasks
        ]
        self._cancelled = False

    @property
    def controls(self) -> dict[str, EpisodeControl]:
        return {e.id: e.control for e in self.episodes}

    def cancel(self) -> None:
        """Cancel every episode, running or waiting."""
        self._cancelled = True
        for e in self.episodes:
            e.control.cancel()

    async def run(self) -> RunResult:
        started = time.monotonic()
        self.bus.publish(
            RunStarted(
                run_id=self.run_id,
                suite=self.suite,
                model=self.backend.spec,
                model_label=self.backend.label,
                scripted=self.backend.scripted,
                task_ids=[t.id for t in self.tasks],
                concurrency=self.concurrency,
                config=self.config.model_dump(),
                name=self.name,
            )
        )
        sem = asyncio.Semaphore(self.concurrency)

        async def one(ep: Episode) -> EpisodeResult:
            async with sem:
                return await ep.run()

        results = await asyncio.gather(*(one(e) for e in self.episodes))
        status = "cancelled" if self._cancelled else "finished"
        duration = time.monotonic() - started
        self.bus.publish(
            RunFinished(
                run_id=self.run_id,
                status=status,
                resolved=sum(r.resolved for r in results),
                total=len(results),
                duration_s=duration,
            )
        )
        return RunResult(run_id=self.run_id, status=status, episodes=list(results), duration_s=duration)
