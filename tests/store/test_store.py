import asyncio
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from looper_engine.errors import UserError
from looper_engine.events import (
    CallParsed,
    EpisodeFinished,
    EpisodeStarted,
    EventBus,
    ModelDelta,
    ModelOutput,
    ToolResult,
)
from looper_engine.store.db import Store
from looper_engine.store.schema import SCHEMA_VERSION
from looper_engine.store.writer import StoreWriter


def started(ep: str) -> EpisodeStarted:
    return EpisodeStarted(
        episode_id=ep,
        task_id="off_by_one/x",
        suite="koans",
        model="scripted:oracle",
        model_label="scripted policy: oracle",
        scripted=True,
        system_prompt="sys",
        task_prompt="task",
        max_steps=5,
        token_budget=1000,
    )


async def test_writer_records_events_and_derived_rows(tmp_path):
    store = await Store.open(tmp_path / "l.db")
    bus = EventBus()
    writer = StoreWriter(store, bus).start()
    bus.publish(started("e1"))
    bus.publish(ModelDelta(episode_id="e1", step=1, text="<read>"))
    bus.publish(ModelOutput(episode_id="e1", step=1, text="<read>a.py</read>", prompt_tokens=10, completion_tokens=5))
    bus.publish(CallParsed(episode_id="e1", step=1, tool="read", target="a.py", call={"tool": "read", "path": "a.py"}))
    bus.publish(ToolResult(episode_id="e1", step=1, tool="read", target="a.py", ok=True, output="1 | x"))
    bus.publish(EpisodeFinished(episode_id="e1", status="resolved", resolved=True, reason="done", steps=1))
    await writer.close()
    ep = await store.episode("e1")
    assert ep is not None and ep.status == "resolved" and ep.resolved and ep.steps == 1
    (step,) = await store.steps("e1")
    assert (step.tool, step.target, step.ok, step.prompt_tokens) == ("read", "a.py", True, 10)
    kinds = [e.kind for e in await store.events("e1")]
    # deltas are not stored: the whole output is in model_output
    assert kinds == ["episode_started", "model_output", "call_parsed", "tool_result", "episode_finished"]
    assert (await store.score("e1"))["resolved"] == 1
    await store.close()


async def test_a_flush_waits_for_the_write_of_events_another_flush_took(tmp_path):
    # Two experiment cells finishing together while a third transaction holds the store: the
    # first flush drains both episodes' events and waits to write them; the second flush, left
    # with nothing to drain, must still wait for that write, since the cell it records next
    # points at its episode.
    store = await Store.open(tmp_path / "l.db")
    bus = EventBus()
    writer = StoreWriter(store, bus)
    bus.publish(started("e1"))
    bus.publish(started("e2"))
    async with store.tx_lock:
        first = asyncio.create_task(writer.flush())
        await asyncio.sleep(0)
        second = asyncio.create_task(writer.flush())
        for _ in range(5):
            await asyncio.sleep(0)
        assert not second.done()
    await asyncio.gather(first, second)
    assert await store.episode("e2") is not None
    await store.close()


async def test_an_episode_finished_while_the_writer_lingers_is_recorded_finished(tmp_path):
    # The writer task woke for an episode's start and lingers to gather more; meanwhile the
    # episode finishes and its task flushes. The start must commit before the finish, or the
    # finish updates no row and the episode stays "running" for ever.
    store = await Store.open(tmp_path / "l.db")
    bus = EventBus()
    writer = StoreWriter(store, bus, linger_s=0.2).start()
    bus.publish(started("e1"))
    for _ in range(5):
        await asyncio.sleep(0)  # the writer task wakes and lingers
    bus.publish(EpisodeFinished(episode_id="e1", status="resolved", resolved=True, reason="done", steps=1))
    await writer.flush()
    ep = await store.episode("e1")
    assert ep is not None and ep.status == "resolved"
    await writer.close()
    ep = await store.episode("e1")
    assert ep is not None and ep.status == "resolved"
    await store.close()


async def locked_out_writer(tmp_path, busy_ms: int, pause_s: float):
    """A started writer whose store another connection has locked, and that connection."""
    store = await Store.open(tmp_path / "l.db")
    await store.db.execute(f"PRAGMA busy_timeout={busy_ms}")
    bus = EventBus()
    writer = StoreWriter(store, bus, linger_s=0)
    writer.retry_pause_s = pause_s
    writer.start()
    other = sqlite3.connect(tmp_path / "l.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    bus.publish(started("e1"))
    return store, writer, other


async def test_a_batch_blocked_by_another_connection_is_written_once_it_lets_go(tmp_path):
    # Another connection (an experiment's own, in a process starved of CPU) holds the write
    # lock past the busy timeout: the writer writes the batch again instead of losing it.
    store, writer, other = await locked_out_writer(tmp_path, busy_ms=50, pause_s=0.05)
    await asyncio.sleep(0.3)  # past the busy timeout at least twice
    other.execute("COMMIT")
    await writer.flush()
    assert await store.episode("e1") is not None
    await writer.close()
    other.close()
    await store.close()


async def test_a_flush_raises_what_stopped_the_writer_rather_than_return_unwritten(tmp_path):
    store, writer, other = await locked_out_writer(tmp_path, busy_ms=20, pause_s=0.01)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            for _ in range(200):
                await asyncio.sleep(0.02)
                await writer.flush()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await store.episode("e1") is None
    await store.close()


async def test_every_read_is_one_hop_so_no_query_holds_the_connections_snapshot(tmp_path):
    # An experiment reads each finished episode on its own connection right after the
    # writer's flush, while other cells read on that connection too. A query left open
    # between two hops to the connection's thread holds the connection's read snapshot:
    # a read made meanwhile by another task missed what the writer had just committed.
    from looper_engine.consolidation.registry import get_adapter, list_adapters
    from looper_engine.store.experiments import experiment_counts, tool_call_count

    db = tmp_path / "l.db"
    writer_store, reader = await Store.open(db), await Store.open(db)
    bus = EventBus()
    writer = StoreWriter(writer_store, bus).start()
    bus.publish(started("e1"))
    bus.publish(EpisodeFinished(episode_id="e1", status="failed", resolved=False, reason="x", steps=1))
    await writer.flush()

    hops = 0
    queue = reader.db._execute  # aiosqlite's one way onto the connection's thread

    async def counted(fn, *args, **kwargs):
        nonlocal hops
        hops += 1
        return await queue(fn, *args, **kwargs)

    reader.db._execute = counted
    reads = {
        "episode": lambda: reader.episode("e1"),
        "score": lambda: reader.score("e1"),
        "events": lambda: reader.events("e1"),
        "steps": lambda: reader.steps("e1"),
        "step_count": lambda: reader.step_count("e1"),
        "runs": lambda: reader.runs(),
        "tool_call_count": lambda: tool_call_count(reader, "e1"),
        "experiment_counts": lambda: experiment_counts(reader, "x"),
        "list_adapters": lambda: list_adapters(reader),
        "get_adapter": lambda: get_adapter(reader, "a"),
    }
    per_query = {}
    for name, read in reads.items():
        hops = 0
        await read()
        per_query[name] = hops
    assert (await reader.episode("e1")).status == "failed"
    # one hop per query: the query and its rows in the same trip
    assert per_query == {**{n: 1 for n in reads}, "experiment_counts": 4}
    reader.db._execute = queue
    await writer.close()
    await writer_store.close()
    await reader.close()


async def test_journal_is_wal_and_schema_version_recorded(tmp_path):
    store = await Store.open(tmp_path / "l.db")
    cur = await store.db.execute("PRAGMA journal_mode")
    assert (await cur.fetchone())[0] == "wal"
    assert await store.schema_version() == SCHEMA_VERSION
    await store.close()


async def test_missing_database_is_a_user_error_when_not_creating(tmp_path):
    with pytest.raises(UserError, match="no database"):
        await Store.open(tmp_path / "nope.db", create=False)


async def test_a_file_that_is_not_sqlite_is_a_user_error_and_is_left_untouched(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 100)
    before = bad.read_bytes()
    with pytest.raises(UserError, match="not a readable Looper database"):
        await Store.open(bad)
    assert bad.read_bytes() == before


async def test_a_foreign_sqlite_file_is_refused(tmp_path):
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t(x)")
    con.commit()
    con.close()
    with pytest.raises(UserError, match="not a Looper database"):
        await Store.open(other)


async def test_a_newer_schema_is_refused(tmp_path):
    store = await Store.open(tmp_path / "l.db")
    await store.db.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    await store.close()
    with pytest.raises(UserError, match="newer than this Looper"):
        await Store.open(tmp_path / "l.db")


CRASHER = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from looper_engine.events import EventBus, ToolResult
    from looper_engine.store.db import Store
    from looper_engine.store.writer import StoreWriter
    sys.path.insert(0, sys.argv[2])
    from test_store import started

    async def main():
        store = await Store.open(sys.argv[1])
        bus = EventBus()
        w = StoreWriter(store, bus)
        bus.publish(started("crashy"))
        bus.publish(ToolResult(episode_id="crashy", step=1, tool="bash", ok=True, output="ok"))
        await w.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


async def test_an_episode_cut_off_by_a_killed_process_is_marked_interrupted_on_next_open(tmp_path):
    db = tmp_path / "l.db"
    script = tmp_path / "crash.py"
    script.write_text(CRASHER)
    from pathlib import Path

    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), str(db), str(Path(__file__).parent)
    )
    assert await proc.wait() == -9
    store = await Store.open(db)
    ep = await store.episode("crashy")
    assert ep is not None and ep.status == "interrupted"
    events = await store.events("crashy")
    assert [e.kind for e in events] == ["episode_started", "tool_result", "episode_finished"]
    assert events[-1].status == "interrupted"
    assert [e.seq for e in events] == [1, 2, 3]
    await store.close()


async def test_a_running_episode_of_a_live_process_is_not_touched(tmp_path):
    store = await Store.open(tmp_path / "l.db")
    bus = EventBus()
    w = StoreWriter(store, bus)
    bus.publish(started("live"))
    await w.flush()
    other = await Store.open(tmp_path / "l.db")  # e.g. the TUI opening while a run goes on
    assert (await other.episode("live")).status == "running"
    await other.close()
    await store.close()


def test_looper_show_on_a_missing_db_exits_2_with_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "looper_engine.cli", "show", "--db", str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "no database" in r.stderr
