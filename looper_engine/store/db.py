"""Opening, migrating and querying the store.

WAL mode: readers (the TUI, `looper show`) never block the writer. Every batch of events is
one transaction, so a crash leaves whole batches or nothing. An episode whose process died
while it was running is marked interrupted on the next open, with an event that says so.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiosqlite
from pydantic import BaseModel

from looper_engine.errors import UserError
from looper_engine.events import EpisodeFinished, EventBase, event_from_json
from looper_engine.store.schema import MIGRATIONS, SCHEMA_VERSION

DEFAULT_DB = Path("looper.db")


class RunRow(BaseModel):
    id: str
    name: str
    suite: str
    model: str
    model_label: str
    scripted: bool
    n_tasks: int
    concurrency: int
    status: str
    resolved: int
    total: int
    started_at: float
    finished_at: float | None
    config: dict[str, Any] = {}


class EpisodeRow(BaseModel):
    id: str
    run_id: str | None
    task_id: str
    suite: str
    family: str
    model: str
    model_label: str
    scripted: bool
    status: str
    resolved: bool
    reason: str
    steps: int
    prompt_tokens: int
    completion_tokens: int
    loop_alarms: int
    duration_s: float
    started_at: float
    finished_at: float | None
    parent_id: str | None
    fork_step: int | None
    config: dict[str, Any] = {}


class StepRow(BaseModel):
    episode_id: str
    step: int
    tool: str | None
    target: str | None
    call: dict[str, Any] | None
    ok: bool | None
    exit_code: int | None
    output_chars: int | None
    tool_s: float | None
    model_s: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    alarm: str | None
    problem: str | None


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def rollback(db: aiosqlite.Connection) -> None:
    """End the connection's open transaction. Shielded: a task cancelled twice (an experiment
    stopping its episodes, then itself) must not leave the transaction open, or every later
    BEGIN on the connection fails and the other connections find the database locked."""
    try:
        await asyncio.shield(db.execute("ROLLBACK"))
    except sqlite3.OperationalError as exc:
        # "no transaction is active": the BEGIN itself failed (locked), so nothing to end
        if "no transaction is active" not in str(exc):
            raise


class Store:
    def __init__(self, path: Path, db: aiosqlite.Connection) -> None:
        self.path = path
        self.db = db
        # SQLite transactions do not nest, and every writer of this store (the event writer,
        # the adapter registry, experiments) shares this one connection: each transaction
        # holds this lock from BEGIN to COMMIT.
        self.tx_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str = DEFAULT_DB, *, create: bool = True) -> Store:
        """Open (and migrate) a store. UserError, one line, for a missing file when
        create=False, a file that is not SQLite, or a schema newer than this Looper."""
        path = Path(path)
        if not path.exists():
            if not create:
                raise UserError(f"no database at {path} (run `looper run` first, or pass --db)")
            if not path.parent.exists():
                raise UserError(f"cannot create database {path}: folder {path.parent} does not exist")
        elif path.is_dir():
            raise UserError(f"{path} is a folder, not a Looper database")
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise UserError(f"cannot open database {path}: {exc}") from exc
        # Rows carry their column names, so a query and its rows come back in one hop (see
        # `Store.rows`).
        db.row_factory = sqlite3.Row
        store = cls(path, db)
        try:
            await store._setup()
        except sqlite3.DatabaseError as exc:
            await db.close()
            raise UserError(f"{path} is not a readable Looper database ({exc})") from exc
        except BaseException:
            await db.close()
            raise
        return store

    async def _setup(self) -> None:
        db = self.db
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA busy_timeout=5000")
        version = await self.schema_version()
        if version > SCHEMA_VERSION:
            raise UserError(
                f"{self.path} has schema version {version}, newer than this Looper ({SCHEMA_VERSION}); upgrade Looper"
            )
        while version < SCHEMA_VERSION:
            try:
                # inside the try: a BEGIN cancelled while it waits for the lock still runs
                await db.execute("BEGIN IMMEDIATE")
                for statement in _split_sql(MIGRATIONS[version]):
                    await db.execute(statement)
                version += 1
                await db.execute(
                    "INSERT INTO meta(key, value) VALUES('schema_version', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (str(version),),
                )
                await db.execute("COMMIT")
            except BaseException:
                await rollback(db)
                raise
        await self.mark_interrupted()

    async def schema_version(self) -> int:
        if not await self.rows("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'"):
            if await self.value("SELECT count(*) FROM sqlite_master"):
                raise UserError(f"{self.path} is a SQLite file but not a Looper database")
            return 0
        rows = await self.rows("SELECT value FROM meta WHERE key='schema_version'")
        return int(rows[0][0]) if rows else 0

    async def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Every row of a query, fetched in the same hop to the connection's thread as the
        query itself. A query left open between hops holds the connection's read snapshot,
        and every other task reading on the connection meanwhile would read that snapshot:
        rows another connection committed since (an episode the writer just finished)
        would be missing for it."""
        return list(await self.db.execute_fetchall(sql, params))

    async def value(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """The first column of the first row (None when there is none), in one hop."""
        rows = await self.rows(sql, params)
        return rows[0][0] if rows else None

    async def mark_interrupted(self) -> list[str]:
        """Episodes (and runs) left 'running' by a process that is gone become 'interrupted'.
        Their recorded events stay; an episode_finished event records the interruption."""
        running = await self.rows("SELECT id, run_id, owner_pid, steps FROM episodes WHERE status='running'")
        stale = [r for r in running if not _pid_alive(r[2])]
        now = time.time()
        async with self.tx_lock:
            await self._mark_stale(stale, now)
        return [r[0] for r in stale]

    async def _mark_stale(self, stale: list[Any], now: float) -> None:
        if stale:
            try:
                # inside the try: a BEGIN cancelled while it waits for the lock still runs
                await self.db.execute("BEGIN IMMEDIATE")
                for ep_id, run_id, _pid, _steps in stale:
                    (seq, step), = await self.rows(
                        "SELECT coalesce(max(seq), 0), coalesce(max(step), 0) FROM events WHERE episode_id=?",
                        (ep_id,),
                    )
                    ev = EpisodeFinished(
                        episode_id=ep_id,
                        run_id=run_id,
                        seq=seq + 1,
                        ts=now,
                        status="interrupted",
                        resolved=False,
                        reason="interrupted: the process running it stopped",
                        steps=step,
                    )
                    await self.db.execute(
                        "INSERT INTO events(episode_id, run_id, seq, kind, step, ts, data) VALUES(?,?,?,?,?,?,?)",
                        (ep_id, run_id, ev.seq, ev.kind, None, now, ev.model_dump_json()),
                    )
                    await self.db.execute(
                        "UPDATE episodes SET status='interrupted', reason=?, steps=?, finished_at=? WHERE id=?",
                        (ev.reason, step, now, ep_id),
                    )
                await self.db.execute("COMMIT")
            except BaseException:
                await rollback(self.db)
                raise
        for run_id, pid in await self.rows("SELECT id, owner_pid FROM runs WHERE status='running'"):
            if not _pid_alive(pid):
                await self.db.execute(
                    "UPDATE runs SET status='interrupted', finished_at=? WHERE id=?", (now, run_id)
                )

    async def close(self) -> None:
        await self.db.close()

    # --- queries ----------------------------------------------------------------------

    async def _fetch(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.rows(sql, params)]

    async def runs(self, limit: int = 200) -> list[RunRow]:
        rows = await self._fetch("SELECT * FROM runs ORDER BY started_at DESC LIMIT ?", (limit,))
        return [RunRow(**{**r, "config": json.loads(r["config"])}) for r in rows]

    async def run(self, run_id: str) -> RunRow | None:
        rows = await self._fetch("SELECT * FROM runs WHERE id=?", (run_id,))
        return RunRow(**{**rows[0], "config": json.loads(rows[0]["config"])}) if rows else None

    async def episodes(self, run_id: str | None = None, limit: int = 500) -> list[EpisodeRow]:
        if run_id is None:
            rows = await self._fetch(
                "SELECT * FROM episodes ORDER BY started_at DESC LIMIT ?", (limit,)
            )
        else:
            rows = await self._fetch(
                "SELECT * FROM episodes WHERE run_id=? ORDER BY started_at DESC LIMIT ?",
                (run_id, limit),
            )
        return [EpisodeRow(**{**r, "config": json.loads(r["config"])}) for r in rows]

    async def episode(self, episode_id: str) -> EpisodeRow | None:
        rows = await self._fetch("SELECT * FROM episodes WHERE id=?", (episode_id,))
        if not rows:
            rows = await self._fetch(
                "SELECT * FROM episodes WHERE id LIKE ? ORDER BY started_at DESC LIMIT 2",
                (episode_id + "%",),
            )
            if len(rows) != 1:
                return None
        r = rows[0]
        return EpisodeRow(**{**r, "config": json.loads(r["config"])})

    async def require_episode(self, episode_id: str) -> EpisodeRow:
        ep = await self.episode(episode_id)
        if ep is None:
            raise UserError(f"no episode {episode_id!r} in {self.path} (see `looper show --list`)")
        return ep

    async def steps(self, episode_id: str, offset: int = 0, limit: int = 1_000_000) -> list[StepRow]:
        rows = await self._fetch(
            "SELECT * FROM steps WHERE episode_id=? ORDER BY step LIMIT ? OFFSET ?",
            (episode_id, limit, offset),
        )
        out = []
        for r in rows:
            r["call"] = json.loads(r["call"]) if r["call"] else None
            r["ok"] = None if r["ok"] is None else bool(r["ok"])
            out.append(StepRow(**r))
        return out

    async def step_count(self, episode_id: str) -> int:
        return int(await self.value("SELECT count(*) FROM steps WHERE episode_id=?", (episode_id,)))

    async def events(
        self,
        episode_id: str,
        *,
        kinds: list[str] | None = None,
        step_from: int | None = None,
        step_to: int | None = None,
    ) -> list[EventBase]:
        sql = "SELECT data FROM events WHERE episode_id=?"
        params: list[Any] = [episode_id]
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            params.extend(kinds)
        if step_from is not None:
            sql += " AND step >= ?"
            params.append(step_from)
        if step_to is not None:
            sql += " AND step <= ?"
            params.append(step_to)
        sql += " ORDER BY seq"
        return [event_from_json(r[0]) for r in await self.rows(sql, tuple(params))]

    async def score(self, episode_id: str) -> dict[str, Any] | None:
        rows = await self._fetch("SELECT * FROM scores WHERE episode_id=?", (episode_id,))
        return rows[0] if rows else None


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
