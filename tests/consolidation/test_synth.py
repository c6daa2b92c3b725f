"""Synthesis: stored episodes -> chat samples in the inference format, checked."""

import json

import pytest

from looper_engine.agent.runner import Runner
from looper_engine.config import AgentConfig
from looper_engine.consolidation.synth import Sample, Selection, check_sample, synthesize
from looper_engine.errors import UserError
from looper_engine.events import EventBus
from looper_engine.models.scripted import ScriptedBackend
from looper_engine.protocol.parser import parse_response
from looper_engine.store.db import Store
from looper_engine.store.writer import StoreWriter
from looper_engine.tasks.suites import load_suite, select_tasks

TASKS = ["off_by_one/date_range", "off_by_one/paginate", "off_by_one/truncate"]


@pytest.fixture(scope="module")
def db_with_runs(tmp_path_factory):
    import asyncio

    path = tmp_path_factory.mktemp("synth") / "looper.db"

    async def go():
        store = await Store.open(path)
        bus = EventBus()
        writer = StoreWriter(store, bus).start()
        tasks = select_tasks(load_suite("koans"), TASKS)
        await Runner(tasks, ScriptedBackend("oracle"), AgentConfig(), bus, concurrency=2).run()
        await Runner(tasks[:1], ScriptedBackend("looper"), AgentConfig(max_steps=6), bus).run()
        await Runner(tasks[:1], ScriptedBackend("malformed"), AgentConfig(), bus).run()
        await writer.close()
        await store.close()

    asyncio.run(go())
    return path


async def test_samples_are_the_exact_inference_contexts_and_parse_into_executed_calls(db_with_runs, tmp_path):
    store = await Store.open(db_with_runs)
    data = await synthesize(store, Selection(), valid_fraction=0.34)
    await store.close()
    assert data.stats.format_ok and not data.stats.format_problems
    for s in data.train + data.valid:
        assert s.messages[0]["role"] == "system" and s.messages[-1]["role"] == "assistant"
        assert parse_response(s.messages[-1]["content"]).call is not None
    # the split never puts one task in both
    assert not {s.task_id for s in data.train} & {s.task_id for s in data.valid}
    assert data.stats.tasks == 3 and data.stats.resolved_share == 1.0 or data.stats.resolved_share > 0
    data.write(tmp_path / "d")
    rows = [json.loads(line) for line in (tmp_path / "d" / "train.jsonl").read_text().splitlines()]
    assert rows and set(rows[0]) == {"messages"}


async def test_resolved_only_by_default_and_failed_steps_dropped(db_with_runs):
    store = await Store.open(db_with_runs)
    data = await synthesize(store, Selection(resolved_only=True))
    # the malformed episode resolved, but its three malformed steps are not samples
    assert data.stats.dropped_failed_steps >= 3
    everything = await synthesize(store, Selection(resolved_only=False, keep_looping_steps=True))
    assert everything.stats.episodes > data.stats.episodes
    assert everything.stats.dropped_looping_steps == 0
    await store.close()


async def test_near_duplicates_are_removed(db_with_runs):
    store = await Store.open(db_with_runs)
    data = await synthesize(store, Selection(resolved_only=False, keep_looping_steps=True))
    await store.close()
    # the looping policy reads the same file again and again: kept once
    assert data.stats.dropped_duplicates >= 3


def test_the_format_check_fails_on_an_assistant_turn_that_does_not_parse_with_the_reason():
    s = Sample(
        messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "t"},
                  {"role": "assistant", "content": "```bash\npytest\n```"}],
        task_id="t", family="f", episode_id="e", step=1, resolved=True,
    )
    reason = check_sample(s, {"tool": "bash", "command": "pytest"})
    assert reason is not None and "does not parse" in reason
    ok = s.model_copy(update={"messages": [*s.messages[:-1], {"role": "assistant", "content": "<bash>pytest</bash>"}]})
    assert check_sample(ok, {"tool": "bash", "command": "pytest"}) is None
    assert "was executed" in check_sample(ok, {"tool": "bash", "command": "ls"})


async def test_nothing_to_train_on_and_too_small_to_split_are_one_line_errors(db_with_runs):
    store = await Store.open(db_with_runs)
    with pytest.raises(UserError, match="nothing to train on"):
        await synthesize(store, Selection(families=["no-such-family"]))
    with pytest.raises(UserError, match="at least 2 tasks"):
        await synthesize(store, Selection(task_ids=[TASKS[0]]))
    await store.close()
