"""The store writer: a bus subscriber that records every event (text deltas excepted: the
whole output arrives in model_output) and keeps the runs/episodes/steps/scores tables.

Events are taken from the queue in batches and each batch is one transaction, so recording
costs O(1) per event however long the episode is, and a crash never half-writes a batch.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from typing import Any

from looper_engine.events import (
    CallParsed,
    EpisodeFinished,
    EpisodeStarted,
    EventBase,
    EventBus,
    LoopAlarm,
    ModelOutput,
    ParseProblem,
    RunFinished,
    RunStarted,
    ToolResult,
)
from looper_engine.store.db import Store, rollback

_STEP_COLUMNS = (
    "tool",
    "target",
    "call",
    "ok",
    "exit_code",
    "output_chars",
    "tool_s",
    "model_s",
    "prompt_tokens",
    "completion_tokens",
    "alarm",
    "problem",
)
_STEP_UPSERT = (
    f"INSERT INTO steps(episode_id, step, {', '.join(_STEP_COLUMNS)}) "
    f"VALUES(?, ?, {', '.join('?' * len(_STEP_COLUMNS))}) "
    "ON CONFLICT(episode_id, step) DO UPDATE SET "
    + ", ".join(f"{c}=coalesce(excluded.{c}, {c})" for c in _STEP_COLUMNS)
)


#: Times a batch is written again when the database stays locked past the busy timeout.
_LOCKED_RETRIES = 5


class StoreWriter:
    def __init__(self, store: Store, bus: EventBus, *, linger_s: float = 0.05) -> None:
        self.store = store
        #: Wait this long after the first queued event so one transaction takes many steps'
        #: events: each transaction costs several thread hops, whatever its size.
        self.linger_s = linger_s
        #: The first pause before a locked batch is written again (then twice it, ...).
        self.retry_pause_s = 0.5
        self.sub = bus.subscribe(predicate=lambda e: e.kind != "model_delta")
        self.written = 0
        self._task: asyncio.Task[None] | None = None
        self._pid = os.getpid()
        self._idle = asyncio.Event()  # set when the writer task holds no unwritten batch
        self._idle.set()
        # One batch at a time on the connection: a flush writes what it drained itself, and a
        # second flush that drained nothing must wait for that write (its events may be in it).
        self._write_lock = asyncio.Lock()

    def start(self) -> StoreWriter:
        self._task = asyncio.create_task(self._run(), name="looper-store-writer")
        return self

    async def _run(self) -> None:
        while await self.sub.wait():
            self._idle.clear()
            try:
                if self.linger_s > 0:
                    await asyncio.sleep(self.linger_s)
                # Drained only now, and queued on the write lock at once: batches commit in the
                # order they were drained, so an episode's row is inserted before a flush from
                # another task can write the update that finishes it.
                await self.write_batch(self.sub.drain())
            finally:
                self._idle.set()

    async def flush(self) -> None:
        """Return once everything published so far is committed; raise what stopped the
        writer if it could not commit (a caller must never read rows that were not written)."""
        await self.write_batch(self.sub.drain())  # empty: waits for a write in flight
        await self._idle.wait()
        if self._task is not None and self._task.done() and not self._task.cancelled():
            failure = self._task.exception()
            if failure is not None:
                raise failure

    async def close(self) -> None:
        """Write what is queued, then stop."""
        self.sub.close()
        if self._task is not None:
            await self._task
        await self.flush()

    async def write_batch(self, batch: list[EventBase]) -> None:
        """Commit ``batch`` in one transaction, after any batch being written now. Call it
        with a batch drained in the same step: the lock is FIFO, so batches commit in the
        order they were drained."""
        async with self._write_lock:
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[EventBase]) -> None:
        events_rows: list[tuple[Any, ...]] = []
        steps: dict[tuple[str, int], dict[str, Any]] = {}
        statements: list[tuple[str, tuple[Any, ...]]] = []
        for ev in batch:
            step = getattr(ev, "step", None)
            events_rows.append(
                (ev.episode_id, ev.run_id, ev.seq, ev.kind, step, ev.ts, ev.model_dump_json())
            )
            if isinstance(ev, RunStarted):
                statements.append(
                    (
                        "INSERT OR IGNORE INTO runs(id, name, suite, model, model_label, scripted, config, "
                        "n_tasks, concurrency, status, started_at, owner_pid) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            ev.run_id,
                            ev.name,
                            ev.suite,
                            ev.model,
                            ev.model_label,
                            int(ev.scripted),
                            json.dumps(ev.config),
                            len(ev.task_ids),
                            ev.concurrency,
                            "running",
                            ev.ts,
                            self._pid,
                        ),
                    )
                )
            elif isinstance(ev, RunFinished):
                statements.append(
                    (
                        "UPDATE runs SET status=?, resolved=?, total=?, finished_at=? WHERE id=?",
                        (ev.status, ev.resolved, ev.total, ev.ts, ev.run_id),
                    )
                )
            elif isinstance(ev, EpisodeStarted):
                statements.append(
                    (
                        "INSERT OR IGNORE INTO episodes(id, run_id, task_id, suite, family, model, model_label, "
                        "scripted, status, started_at, parent_id, fork_step, config, owner_pid) "
                        "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            ev.episode_id,
                            ev.run_id,
                            ev.task_id,
                            ev.suite,
                            ev.family,
                            ev.model,
                            ev.model_label,
                            int(ev.scripted),
                            "running",
                            ev.ts,
                            ev.parent_episode_id,
                            ev.fork_step,
                            json.dumps(ev.config),
                            self._pid,
                        ),
                    )
                )
            elif isinstance(ev, EpisodeFinished):
                statements.append(
                    (
                        "UPDATE episodes SET status=?, resolved=?, reason=?, steps=?, prompt_tokens=?, "
                        "completion_tokens=?, loop_alarms=?, duration_s=?, finished_at=? WHERE id=?",
                        (
                            ev.status,
                            int(ev.resolved),
                            ev.reason,
                            ev.steps,
                            ev.prompt_tokens,
                            ev.completion_tokens,
                            ev.loop_alarms,
                            ev.duration_s,
                            ev.ts,
                            ev.episode_id,
                        ),
                    )
                )
                if ev.status in ("resolved", "failed"):
                    statements.append(
                        (
                            "INSERT OR REPLACE INTO scores(episode_id, resolved, tests_passed, tests_failed, "
                            "output, error_signature) VALUES(?,?,?,?,?,?)",
                            (
                                ev.episode_id,
                                int(ev.resolved),
                                ev.tests_passed,
                                ev.tests_failed,
                                ev.test_output,
                                ev.error_signature,
                            ),
                        )
                    )
            elif ev.episode_id is not None and step is not None:
                row = steps.setdefault((ev.episode_id, step), {})
                if isinstance(ev, ModelOutput):
                    row.update(
                        model_s=ev.duration_s,
                        prompt_tokens=ev.prompt_tokens,
                        completion_tokens=ev.completion_tokens,
                    )
                elif isinstance(ev, CallParsed):
                    row.update(tool=ev.tool, target=ev.target, call=json.dumps(ev.call))
                elif isinstance(ev, ParseProblem):
                    row.update(tool="(malformed)", problem=ev.message[:500], ok=0)
                elif isinstance(ev, ToolResult):
                    row.update(
                        ok=int(ev.ok),
                        exit_code=ev.exit_code,
                        output_chars=len(ev.output),
                        tool_s=ev.duration_s,
                    )
                elif isinstance(ev, LoopAlarm):
                    row.update(alarm=ev.loop)
        step_rows = [
            (ep, st, *(vals.get(c) for c in _STEP_COLUMNS))
            for (ep, st), vals in steps.items()
            if vals
        ]
        for attempt in range(_LOCKED_RETRIES + 1):
            try:
                async with self.store.tx_lock:
                    await self._commit(statements, step_rows, events_rows)
                break
            except sqlite3.OperationalError as exc:
                # Another connection held the write lock past the busy timeout (a process
                # starved of CPU mid-transaction): the batch is not lost, it is written again.
                if "locked" not in str(exc) or attempt == _LOCKED_RETRIES:
                    raise
                await asyncio.sleep(self.retry_pause_s * (attempt + 1))
        self.written += len(batch)

    async def _commit(
        self,
        statements: list[tuple[str, tuple[Any, ...]]],
        step_rows: list[tuple[Any, ...]],
        events_rows: list[tuple[Any, ...]],
    ) -> None:
        db = self.store.db
        try:
            # inside the try: a BEGIN cancelled while it waits for the lock still runs
            await db.execute("BEGIN IMMEDIATE")
            # Parents before children: runs/episodes first, then steps, then events.
            for sql, params in statements:
                if sql.startswith("INSERT"):
                    await db.execute(sql, params)
            if step_rows:
                await db.executemany(_STEP_UPSERT, step_rows)
            for sql, params in statements:
                if not sql.startswith("INSERT"):
                    await db.execute(sql, params)
            await db.executemany(
                "INSERT INTO events(episode_id, run_id, seq, kind, step, ts, data) VALUES(?,?,?,?,?,?,?)",
                events_rows,
            )
            await db.execute("COMMIT")
        except BaseException:
            await rollback(db)
            raise
