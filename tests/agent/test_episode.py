"""Whole episodes with the scripted policies, recorded in a real store."""

import asyncio

from conftest import KOAN

from looper_engine.agent.episode import Episode
from looper_engine.chat import Message
from looper_engine.config import AgentConfig
from looper_engine.errors import BackendError
from looper_engine.models.base import Backend, GenOptions, ModelStream
from looper_engine.models.registry import create_backend
from looper_engine.store.replay import trajectory_from_events
from looper_engine.tasks.suites import get_task


async def run_policy(bus, policy: str, **cfg) -> Episode:
    ep = Episode(get_task(KOAN), create_backend(f"scripted:{policy}"), AgentConfig(**cfg), bus)
    await ep.run()
    return ep


async def test_oracle_resolves_and_every_step_is_recorded(recorded):
    bus, store, writer = recorded
    ep = await run_policy(bus, "oracle")
    await writer.flush()
    row = await store.episode(ep.id)
    assert row.status == "resolved" and row.resolved
    steps = await store.steps(ep.id)
    assert [s.tool for s in steps] == ["read", "edit", "bash", "done"]
    assert steps[2].exit_code == 0
    traj = trajectory_from_events(await store.events(ep.id))
    assert traj.finished.tests_failed == 0 and traj.finished.tests_passed > 0
    # the context of step 2 is system + task + step 1's call and its observation
    ctx = traj.context(2)
    assert [m.role for m in ctx] == ["system", "user", "assistant", "user"]
    assert "<read>" in ctx[2].content and "|" in ctx[3].content


async def test_the_looping_policy_raises_alarms_tells_the_model_and_hits_the_step_limit(recorded):
    bus, store, writer = recorded
    ep = await run_policy(bus, "looper", max_steps=8)
    await writer.flush()
    row = await store.episode(ep.id)
    assert row.status == "failed" and "step limit" in row.reason
    traj = trajectory_from_events(await store.events(ep.id))
    loops = {a.loop for s in traj.steps for a in s.alarms}
    assert {"repeated_call", "repeated_read"} <= loops
    assert row.loop_alarms >= 2
    told = [s.observation for s in traj.steps if s.alarms]
    assert all("[loop detected:" in o for o in told)


async def test_loop_detection_off_raises_no_alarm(recorded):
    bus, store, writer = recorded
    ep = await run_policy(bus, "looper", max_steps=6, loop_detection=False)
    await writer.flush()
    assert (await store.episode(ep.id)).loop_alarms == 0


async def test_malformed_output_becomes_observations_and_the_episode_goes_on(recorded):
    bus, store, writer = recorded
    ep = await run_policy(bus, "malformed")
    await writer.flush()
    traj = trajectory_from_events(await store.events(ep.id))
    problems = [s.problem for s in traj.steps[:3]]
    assert all(problems), problems
    assert "</edit>" in problems[0]  # says how to close it
    assert "<python>" in problems[1] or "python" in problems[1]
    assert traj.steps[3].observation  # then it recovers
    assert (await store.episode(ep.id)).status == "resolved"


async def test_never_done_is_cut_by_the_step_limit_with_a_no_progress_alarm(recorded):
    bus, store, writer = recorded
    ep = await run_policy(bus, "never-done", max_steps=10, no_progress_steps=5)
    await writer.flush()
    row = await store.episode(ep.id)
    assert row.steps == 10 and "step limit" in row.reason
    traj = trajectory_from_events(await store.events(ep.id))
    assert any(a.loop == "no_progress" for s in traj.steps for a in s.alarms)


async def test_done_without_a_fix_is_scored_by_the_tests_not_believed(recorded):
    bus, store, writer = recorded
    ep = await run_policy(bus, "wrong-fix")
    await writer.flush()
    row = await store.episode(ep.id)
    assert row.status == "failed" and "tests still fail" in row.reason
    assert (await store.score(ep.id))["error_signature"]


class BrokenBackend(Backend):
    spec = "test:broken"
    label = "broken"

    class _S(ModelStream):
        async def _deltas(self):
            yield "<bash>ls"
            raise ConnectionResetError("server closed the connection")

    def stream(self, messages: list[Message], options: GenOptions) -> ModelStream:
        return self._S()


async def test_a_stream_cut_midway_ends_the_episode_as_errored_and_keeps_the_record(recorded):
    bus, store, writer = recorded
    ep = Episode(get_task(KOAN), BrokenBackend(), AgentConfig(), bus)
    result = await ep.run()
    await writer.flush()
    assert result.status == "errored" and "server closed the connection" in result.reason
    row = await store.episode(ep.id)
    assert row.status == "errored"
    assert [e.kind for e in await store.events(ep.id)][-1] == "episode_finished"


class RaisingBackendError(BrokenBackend):
    class _S(ModelStream):
        async def _deltas(self):
            raise BackendError("model x is not available; run `ollama pull x`")
            yield ""

    def stream(self, messages, options):
        return self._S()


async def test_a_backend_error_reason_is_kept_verbatim(recorded):
    bus, _, _ = recorded
    result = await Episode(get_task(KOAN), RaisingBackendError(), AgentConfig(), bus).run()
    assert result.status == "errored" and "ollama pull x" in result.reason


async def test_concurrent_episodes_do_not_mix_their_events(recorded):
    bus, store, writer = recorded
    backend = create_backend("scripted:oracle")
    eps = [
        Episode(get_task(t), backend, AgentConfig(), bus)
        for t in ("off_by_one/date_range", "off_by_one/paginate")
    ]
    await asyncio.gather(*(e.run() for e in eps))
    await writer.flush()
    for e in eps:
        events = await store.events(e.id)
        seqs = [ev.seq for ev in events]
        assert seqs == sorted(set(seqs)) and seqs[0] == 1  # deltas are numbered but not stored
        assert events[0].task_id == e.task.id
        assert (await store.episode(e.id)).resolved
