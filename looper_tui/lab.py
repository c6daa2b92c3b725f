"""The lab session behind the TUI: one database, one event bus, the store writer, and the
runs and forks started from the screens, with their controls.

No widgets here. The app runs the coroutines this returns in Textual workers (the engine
shares the UI's asyncio loop) and one long-lived worker feeds `state` from the bus.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from looper_engine.agent.control import EpisodeControl
from looper_engine.agent.episode import Episode, EpisodeResult
from looper_engine.agent.fork import fork_episode
from looper_engine.agent.runner import Runner, RunResult
from looper_engine.config import FRAMEWORK_SWITCHES, AgentConfig
from looper_engine.errors import UserError
from looper_engine.events import EventBus
from looper_engine.models.base import Backend
from looper_engine.models.registry import create_backend
from looper_engine.models.spec import checked_spec
from looper_engine.store.db import Store
from looper_engine.store.writer import StoreWriter
from looper_engine.tasks.model import Task
from looper_engine.tasks.suites import load_suite, select_tasks
from looper_tui.state import LabState, RunState

#: A scripted policy streams this fast in the lab unless told otherwise: slow enough to
#: watch the tool tags appear, fast enough that a koan takes seconds.
WATCHABLE_RATE = 300.0


class RunRequest(BaseModel):
    """What the new-run form (or the demo button) asks for."""

    model_config = ConfigDict(extra="forbid")

    suite: str = "koans"
    tasks: list[str] = Field(default_factory=list, description="task id globs; empty = the whole suite")
    model: str = "scripted:oracle"
    rate: float = Field(WATCHABLE_RATE, ge=0, description="tokens/s of a scripted policy (0 = unthrottled)")
    concurrency: int = Field(2, ge=1, le=64)
    max_steps: int | None = Field(None, ge=1)
    token_budget: int | None = Field(None, ge=256)
    off: list[str] = Field(default_factory=list, description="framework switches turned off")
    name: str = ""
    sandbox: Literal["auto", "bwrap", "seatbelt", "none"] = "auto"

    @field_validator("off")
    @classmethod
    def _known_switches(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in FRAMEWORK_SWITCHES]
        if unknown:
            raise ValueError(f"unknown framework switch {unknown[0]!r}")
        return value

    @field_validator("model")
    @classmethod
    def _spec(cls, value: str) -> str:
        return checked_spec(value)

    def agent_config(self) -> AgentConfig:
        overrides: dict[str, object] = {name: False for name in self.off}
        if self.max_steps is not None:
            overrides["max_steps"] = self.max_steps
        if self.token_budget is not None:
            overrides["token_budget"] = self.token_budget
        overrides["sandbox"] = self.sandbox
        return AgentConfig(**overrides)


class Lab:
    def __init__(self, db_path: Path, *, workspace_parent: Path | None = None) -> None:
        self.db_path = Path(db_path)
        self.workspace_parent = workspace_parent
        self.bus = EventBus()
        self.state = LabState()
        self.store: Store | None = None
        self.writer: StoreWriter | None = None
        self.controls: dict[str, EpisodeControl] = {}
        self.runners: dict[str, Runner] = {}
        self._active: set[asyncio.Task[object]] = set()

    # --- lifetime -----------------------------------------------------------------

    async def open(self) -> None:
        """Open (or create) the database. UserError, one line, when that is impossible."""
        self.store = await Store.open(self.db_path, create=True)
        self.writer = StoreWriter(self.store, self.bus).start()

    def require_store(self) -> Store:
        if self.store is None:
            raise UserError(f"the database {self.db_path} is not open")
        return self.store

    @property
    def busy(self) -> bool:
        return any(not t.done() for t in self._active)

    async def close(self, grace_s: float = 3.0) -> None:
        """Cancel what is running (each episode records itself as cancelled), wait a little
        for that to reach the database, then close it."""
        for runner in self.runners.values():
            runner.cancel()
        for control in self.controls.values():
            control.cancel()
        pending = [t for t in self._active if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=grace_s)
        try:
            if self.writer is not None:
                await self.writer.close()
        finally:
            # The connection closes even when the last write failed: an open one keeps the
            # process from exiting.
            self.writer = None
            if self.store is not None:
                await self.store.close()
                self.store = None

    # --- runs ---------------------------------------------------------------------

    def prepare_run(
        self,
        request: RunRequest,
        *,
        tasks: list[Task] | None = None,
        backend: Backend | None = None,
        start_paused: bool = False,
        config: AgentConfig | None = None,
        suite: str | None = None,
    ) -> Runner:
        """Build a run (UserError on a bad suite, task pattern or model spec); its episodes
        and their controls exist at once, so a screen can show them before they start.
        `config` replaces the request's agent config and `suite` its suite's name (for
        callers that bring their own tasks, such as the mini-lab)."""
        if tasks is None:
            tasks = select_tasks(load_suite(request.suite), request.tasks or None)
        if not tasks:
            raise UserError(f"the suite {request.suite!r} has no tasks to run")
        if backend is None:
            backend = create_backend(request.model, rate=request.rate)
        runner = Runner(
            tasks,
            backend,
            config or request.agent_config(),
            self.bus,
            suite=suite or request.suite,
            concurrency=request.concurrency,
            name=request.name,
            start_paused=start_paused,
            workspace_parent=self.workspace_parent,
        )
        self.runners[runner.run_id] = runner
        self.state.runs[runner.run_id] = RunState(id=runner.run_id)
        for ep in runner.episodes:
            self.controls[ep.id] = ep.control
            self.state.expect(ep.id, runner.run_id, ep.task.id)
        return runner

    async def run(self, runner: Runner) -> RunResult:
        """Check the backend can serve, then run every episode."""
        task = asyncio.current_task()
        if task is not None:
            self._active.add(task)
        try:
            await runner.backend.check()
            return await runner.run()
        finally:
            await runner.backend.aclose()

    # --- forks --------------------------------------------------------------------

    async def prepare_fork(
        self,
        episode_id: str,
        step: int,
        *,
        system_prompt: str | None = None,
        model: str | None = None,
        rate: float = WATCHABLE_RATE,
        backend: Backend | None = None,
    ) -> Episode:
        """A new episode continuing `episode_id` after its step `step`, linked to it."""
        store = self.require_store()
        parent = await store.require_episode(episode_id)
        if backend is None:
            backend = create_backend(model or parent.model, rate=rate)
        episode = await fork_episode(store, parent.id, step, backend, self.bus, system_prompt=system_prompt)
        self.controls[episode.id] = episode.control
        self.state.expect(episode.id, episode.run_id, episode.task.id)
        return episode

    async def run_episode(self, episode: Episode) -> EpisodeResult:
        task = asyncio.current_task()
        if task is not None:
            self._active.add(task)
        await episode.backend.check()
        return await episode.run()
