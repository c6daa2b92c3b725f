"""Resume from here: a new episode that starts from step k of a stored one."""

from __future__ import annotations

from looper_engine.agent.control import EpisodeControl
from looper_engine.agent.episode import Episode
from looper_engine.config import AgentConfig
from looper_engine.errors import UserError
from looper_engine.events import EventBus
from looper_engine.models.base import Backend
from looper_engine.store.db import Store
from looper_engine.store.replay import trajectory_from_events
from looper_engine.tasks.suites import get_task


async def fork_episode(
    store: Store,
    episode_id: str,
    step: int,
    backend: Backend,
    bus: EventBus,
    *,
    config: AgentConfig | None = None,
    system_prompt: str | None = None,
    control: EpisodeControl | None = None,
    run_id: str | None = None,
) -> Episode:
    """Build (not run) an episode that continues `episode_id` after its step `step`: the
    history up to and including that step's observation, the workspace rebuilt by re-running
    the recorded calls, linked to its parent. Optionally with an edited system prompt."""
    parent = await store.require_episode(episode_id)
    traj = trajectory_from_events(await store.events(parent.id))
    if not 0 <= step <= len(traj.steps):
        raise UserError(f"episode {parent.id} has steps 1..{len(traj.steps)}; cannot fork at {step}")
    cfg = config or AgentConfig.model_validate(parent.config or {})
    history = traj.history_after(step)
    return Episode(
        get_task(parent.task_id),
        backend,
        cfg,
        bus,
        run_id=run_id or parent.run_id,
        control=control,
        system_prompt=system_prompt if system_prompt is not None else history[0].content,
        prefix=history[2:],
        replay_calls=traj.executed_calls(step),
        parent_episode_id=parent.id,
        fork_step=step,
    )
