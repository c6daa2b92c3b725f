"""The control API the TUI and the CLI drive: pause, step, edit, resume, cancel, fork."""

import asyncio

import pytest
from conftest import KOAN

from looper_engine.agent.control import ControlError, EpisodeControl
from looper_engine.agent.episode import Episode
from looper_engine.agent.fork import fork_episode
from looper_engine.chat import Message
from looper_engine.config import AgentConfig
from looper_engine.models.scripted import ScriptedBackend
from looper_engine.tasks.suites import get_task


async def wait_for(cond, timeout=10.0):
    async def poll():
        while not cond():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


def episode(bus, policy="oracle", start_paused=False, **cfg):
    backend = ScriptedBackend(policy, rate=0)
    control = EpisodeControl(start_paused=start_paused)
    ep = Episode(get_task(KOAN), backend, AgentConfig(**cfg), bus, control=control)
    return ep, backend, control


async def test_pause_stops_new_steps_and_resume_finishes(recorded):
    bus, store, writer = recorded
    ep, backend, control = episode(bus, start_paused=True)
    task = asyncio.create_task(ep.run())
    await wait_for(lambda: control.state == "paused")
    await asyncio.sleep(0.05)
    assert backend.received == []  # no model call while paused
    control.resume()
    result = await asyncio.wait_for(task, 60)
    assert result.resolved


async def test_step_runs_exactly_one_tool_call_then_pauses_again(recorded):
    bus, store, writer = recorded
    ep, backend, control = episode(bus, start_paused=True)
    task = asyncio.create_task(ep.run())
    await wait_for(lambda: control.state == "paused")
    for expected in (1, 2):
        control.step()
        await wait_for(lambda n=expected: control.state == "paused" and ep.step == n)
        await asyncio.sleep(0.05)
        assert len(backend.received) == expected
    control.resume()
    await asyncio.wait_for(task, 60)
    await writer.flush()
    kinds = [e.kind for e in await store.events(ep.id) if e.kind in ("paused", "resumed")]
    assert kinds[:4] == ["paused", "resumed", "paused", "resumed"]


async def test_an_edit_made_while_paused_is_what_the_model_receives_next(recorded):
    bus, store, writer = recorded
    ep, backend, control = episode(bus, start_paused=True)
    task = asyncio.create_task(ep.run())
    await wait_for(lambda: control.state == "paused")
    control.step()
    await wait_for(lambda: control.state == "paused" and ep.step == 1)
    system, history = control.snapshot()
    assert history[0].role == "user" and len(history) == 3  # task, step 1 call, observation
    edited = [*history[:-1], Message(role="user", content="EDITED OBSERVATION")]
    control.edit(system_prompt="EDITED SYSTEM PROMPT", messages=edited)
    control.step()
    await wait_for(lambda: len(backend.received) == 2)
    sent = backend.received[1]
    assert sent[0] == Message(role="system", content="EDITED SYSTEM PROMPT")
    assert sent[-1].content == "EDITED OBSERVATION"
    control.resume()
    await asyncio.wait_for(task, 60)
    await writer.flush()
    edits = [e for e in await store.events(ep.id) if e.kind == "prompt_edited"]
    assert len(edits) == 1 and edits[0].system_prompt == "EDITED SYSTEM PROMPT"


async def test_edit_is_refused_while_running():
    control = EpisodeControl()
    with pytest.raises(ControlError, match="pause"):
        control.edit(system_prompt="x")


async def test_cancel_leaves_a_stored_cancelled_episode(recorded):
    bus, store, writer = recorded
    ep, backend, control = episode(bus, policy="never-done", start_paused=True, max_steps=50)
    task = asyncio.create_task(ep.run())
    await wait_for(lambda: control.state == "paused")
    control.step()
    await wait_for(lambda: control.state == "paused" and ep.step == 1)
    control.cancel()
    result = await asyncio.wait_for(task, 30)
    await writer.flush()
    assert result.status == "cancelled"
    row = await store.episode(ep.id)
    assert row.status == "cancelled" and row.steps == 1


async def test_fork_from_step_k_continues_with_the_parents_history_and_workspace(recorded):
    bus, store, writer = recorded
    ep, _, _ = episode(bus)
    await ep.run()
    await writer.flush()
    # fork after the edit (step 2): the workspace must hold the fix already
    backend = ScriptedBackend("oracle", rate=0)
    child = await fork_episode(store, ep.id, 2, backend, bus, system_prompt="FORKED PROMPT")
    result = await child.run()
    await writer.flush()
    assert result.resolved
    row = await store.episode(child.id)
    assert row.parent_id == ep.id and row.fork_step == 2
    first = backend.received[0]
    assert first[0].content == "FORKED PROMPT"
    assert [m.role for m in first[1:]] == ["user", "assistant", "user", "assistant", "user"]
    assert (await store.steps(child.id))[0].step == 3  # numbering continues
