"""One fold of an episode's events: the store's replay, the TUI's buffers and the headless
live view all see an episode through it, so they agree step by step."""

import dataclasses
import io

import pytest
from rich.console import Console

from looper_engine.agent.episode import Episode
from looper_engine.cli.live import LiveState
from looper_engine.config import AgentConfig
from looper_engine.episode_view import EpisodeFold, fold_episode
from looper_engine.events import (
    CallParsed,
    ContextBuilt,
    EpisodeFinished,
    EpisodeStarted,
    EventBus,
    ModelDelta,
    ModelOutput,
    Observation,
    RunFinished,
    ToolResult,
)
from looper_engine.models.registry import create_backend
from looper_engine.store.db import Store
from looper_engine.store.replay import trajectory_from_events
from looper_engine.store.writer import StoreWriter
from looper_engine.tasks.suites import get_task
from looper_tui.state import LabState

KOAN = "off_by_one/date_range"


@pytest.fixture
async def looping_episode(tmp_path):
    """The events of a recorded episode whose policy loops (alarms) until the step limit."""
    store = await Store.open(tmp_path / "looper.db")
    bus = EventBus()
    writer = StoreWriter(store, bus, linger_s=0).start()
    ep = Episode(get_task(KOAN), create_backend("scripted:looper"), AgentConfig(max_steps=6), bus)
    await ep.run()
    await writer.flush()
    events = await store.events(ep.id)
    await writer.close()
    await store.close()
    return ep.id, events


def _shape(steps):
    return [(s.step, s.tool, s.target, s.status, len(s.alarms)) for s in steps]


async def test_replay_the_tui_and_the_cli_see_the_same_steps(looping_episode):
    episode_id, events = looping_episode
    view = fold_episode(events, episode_id)
    assert view.status == "failed" and len(view.steps) == 6 == view.finished.steps
    assert view.alarms and sum(len(s.alarms) for s in view.steps) == len(view.alarms)

    traj = trajectory_from_events(events)
    assert _shape(traj.steps) == _shape(view.steps)

    lab = LabState()
    lab.apply(events)
    assert _shape(lab.episode(episode_id).steps) == _shape(view.steps)

    live = LiveState(total=1)
    for ev in events:
        if not isinstance(ev, EpisodeFinished):
            live.apply(ev)
    console = Console(width=160, record=True, file=io.StringIO())
    console.print(live.render())
    last = view.steps[-1]
    row = next(line for line in console.export_text().splitlines() if view.task_id in line)
    assert row.split() == [view.task_id, str(last.step), *last.last_call.split()]
    assert len(live.alarms) == len(view.alarms)


def _step_events(step: int, text: str) -> list:
    return [
        ContextBuilt(episode_id="e", step=step, n_messages=2 * step, context_tokens=10 * step, budget=1000),
        ModelDelta(episode_id="e", step=step, text=text[: len(text) // 2]),
        ModelDelta(episode_id="e", step=step, text=text[len(text) // 2 :]),
        ModelOutput(episode_id="e", step=step, text=text, prompt_tokens=5, completion_tokens=7, duration_s=0.5),
        CallParsed(episode_id="e", step=step, tool="bash", target="pytest", call={"tool": "bash"}),
        ToolResult(episode_id="e", step=step, tool="bash", ok=True, exit_code=0, output="out" * 50),
        Observation(episode_id="e", step=step, text="obs" * 50),
    ]


def _started() -> EpisodeStarted:
    return EpisodeStarted(
        episode_id="e", task_id="t", suite="s", model="m", model_label="m", system_prompt="sys",
        task_prompt="task", max_steps=30, token_budget=1000,
    )


def test_a_live_fold_bounds_the_text_and_keeps_every_steps_metadata():
    fold = EpisodeFold("e", keep_text_steps=3, max_output_chars=100)
    fold.apply(_started())
    for step in range(1, 11):
        for ev in _step_events(step, f"step {step} " + "x" * 500):
            fold.apply(ev)
    view = fold.view()
    assert [s.step for s in view.steps] == list(range(1, 11))
    assert all(s.tool == "bash" and s.completion_tokens == 7 for s in view.steps)
    old, recent = view.steps[:7], view.steps[7:]
    assert all(s.text_dropped and s.output == "" and s.observation is None for s in old)
    assert all(s.result is not None and s.result.output == "" and s.result.exit_code == 0 for s in old)
    assert all(not s.text_dropped and len(s.output) == 100 and s.output.endswith("x") for s in recent)
    # Replay keeps everything.
    full = fold_episode([_started(), *(ev for n in range(1, 11) for ev in _step_events(n, "y" * 500))])
    assert all(len(s.output) == 500 and s.observation for s in full.steps)


def test_views_are_immutable_snapshots_and_the_fold_is_deterministic():
    events = [_started(), *_step_events(1, "hello"), *_step_events(2, "world")]
    fold = EpisodeFold("e")
    fold.apply_all(events[:8])
    before = fold.view()
    assert fold.view() is before  # nothing new: the same view
    fold.apply_all(events[8:])
    after = fold.view()
    assert len(before.steps) == 1 and len(after.steps) == 2 and after.version > before.version
    assert before.steps[0] == after.steps[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.steps[0].output = "changed"  # type: ignore[misc]
    assert fold_episode(events, "e") == after
    # A run's event is not the episode's: it changes nothing.
    assert not fold.apply(RunFinished(run_id="r", status="finished", resolved=0, total=0))
    assert fold.view() is after
