"""Queries for the experiment tables (schema migration 1 -> 2).

An experiment's progress is a set of finished units of work, each one row written in one
transaction when it finishes:

- a cell: (arm, seed, cycle, phase, chunk, task) -> the episode that measured it, and whether
  it resolved. Cells whose arm state, prompt and config are identical (the same fingerprint)
  share one episode: a measurement is never repeated under the same conditions.
- a candidate: what a night produced (an adapter, a rule set, a memory), or why it produced
  nothing.
- a night: the regression gate's verdict on the candidate, and the arm state the next cycle
  starts from.

Restarting skips every recorded unit, so a killed experiment continues where it stopped.
These queries should run on their own connection (`Store.open` a second time), not the store
writer's: the writer's transactions and these would otherwise interleave on one connection.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from pydantic import BaseModel, Field

from looper_engine.errors import UserError
from looper_engine.store.db import Store, _pid_alive, rollback


class ExperimentRow(BaseModel):
    id: str
    name: str
    spec_hash: str
    spec: dict[str, Any]
    source_path: str
    status: str
    created_at: float
    updated_at: float
    finished_at: float | None = None
    owner_pid: int | None = None


class CellRow(BaseModel):
    exp_id: str
    arm: str
    seed: int
    cycle: int
    phase: str
    chunk: int
    task_id: str
    episode_id: str
    resolved: bool
    fingerprint: str
    reused: bool = False
    status: str = ""
    steps: int = 0
    tokens: int = 0
    tool_calls: int = 0
    loop_alarms: int = 0
    duration_s: float = 0.0
    error_signature: str = ""
    created_at: float = Field(default_factory=time.time)


class CandidateRow(BaseModel):
    exp_id: str
    arm: str
    seed: int
    cycle: int
    skipped: str = ""
    state: dict[str, Any] = Field(default_factory=dict)
    episodes: list[str] = Field(default_factory=list)
    curve: list[dict[str, Any]] = Field(default_factory=list)
    data_stats: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    created_at: float = Field(default_factory=time.time)


class NightRow(BaseModel):
    exp_id: str
    arm: str
    seed: int
    cycle: int
    adopted: bool
    verdict: dict[str, Any] = Field(default_factory=dict)
    state: dict[str, Any] = Field(default_factory=dict)
    created_at: float = Field(default_factory=time.time)


_CELL_COLS = tuple(CellRow.model_fields)
_CAND_JSON = ("state", "episodes", "curve", "data_stats", "notes")
_NIGHT_JSON = ("verdict", "state")


async def _rows(store: Store, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    return [dict(r) for r in await store.rows(sql, params)]


def _lock(store: Store) -> asyncio.Lock:
    """One transaction at a time per connection: concurrent episodes record their cells on
    the same connection as the event writer, and SQLite transactions do not nest."""
    return store.tx_lock


async def _transaction(store: Store, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    db = store.db
    async with _lock(store):
        try:
            # inside the try: a BEGIN cancelled while it waits for the lock still runs
            await db.execute("BEGIN IMMEDIATE")
            for sql, params in statements:
                await db.execute(sql, params)
            await db.execute("COMMIT")
        except BaseException:
            await rollback(db)
            raise


def _experiment(row: dict[str, Any]) -> ExperimentRow:
    return ExperimentRow(**{**row, "spec": json.loads(row["spec"])})


# --- experiments -----------------------------------------------------------------------------


async def claim_experiment(
    store: Store, exp_id: str, spec_hash: str, spec: dict[str, Any], source_path: str
) -> ExperimentRow:
    """Create the experiment's row, or take over an existing one run with the same spec.
    UserError when the stored experiment has another spec, or another live process runs it."""
    now = time.time()
    pid = os.getpid()
    async with _lock(store):
        await _claim(store, exp_id, spec_hash, spec, source_path, now, pid)
    got = await get_experiment(store, exp_id)
    assert got is not None
    return got


async def _claim(
    store: Store, exp_id: str, spec_hash: str, spec: dict[str, Any], source_path: str, now: float, pid: int
) -> None:
    try:
        # inside the try: a BEGIN cancelled while it waits for the lock still runs
        await store.db.execute("BEGIN IMMEDIATE")
        rows = await _rows(store, "SELECT * FROM experiments WHERE id=?", (exp_id,))
        if rows:
            row = rows[0]
            if row["spec_hash"] != spec_hash:
                raise UserError(
                    f"experiment {exp_id!r} in {store.path} was started from a different spec; "
                    "give the changed file another `name`, or use another --db"
                )
            owner = row["owner_pid"]
            if row["status"] == "running" and owner and owner != pid and _pid_alive(owner):
                raise UserError(f"experiment {exp_id!r} is being run by process {owner}")
            status = "finished" if row["status"] == "finished" else "running"
            await store.db.execute(
                "UPDATE experiments SET status=?, owner_pid=?, updated_at=? WHERE id=?",
                (status, pid, now, exp_id),
            )
        else:
            await store.db.execute(
                "INSERT INTO experiments(id, name, spec_hash, spec, source_path, status, created_at, "
                "updated_at, owner_pid) VALUES(?,?,?,?,?,?,?,?,?)",
                (exp_id, exp_id, spec_hash, json.dumps(spec), source_path, "running", now, now, pid),
            )
        await store.db.execute("COMMIT")
    except BaseException:
        await rollback(store.db)
        raise


async def set_experiment_status(store: Store, exp_id: str, status: str) -> None:
    now = time.time()
    finished = now if status == "finished" else None
    await _transaction(
        store,
        [
            (
                "UPDATE experiments SET status=?, updated_at=?, finished_at=coalesce(?, finished_at) WHERE id=?",
                (status, now, finished, exp_id),
            )
        ],
    )


async def get_experiment(store: Store, exp_id: str) -> ExperimentRow | None:
    rows = await _rows(store, "SELECT * FROM experiments WHERE id=?", (exp_id,))
    return _experiment(rows[0]) if rows else None


async def list_experiments(store: Store) -> list[ExperimentRow]:
    rows = await _rows(store, "SELECT * FROM experiments ORDER BY created_at DESC")
    out = []
    for row in rows:
        exp = _experiment(row)
        if exp.status == "running" and not _pid_alive(exp.owner_pid):
            exp.status = "interrupted"
        out.append(exp)
    return out


async def experiment_counts(store: Store, exp_id: str) -> dict[str, int]:
    """Recorded units: cells, distinct episodes, candidates, nights."""
    out = {}
    for key, sql in (
        ("cells", "SELECT count(*) FROM exp_cells WHERE exp_id=?"),
        ("episodes", "SELECT count(DISTINCT episode_id) FROM exp_cells WHERE exp_id=?"),
        ("candidates", "SELECT count(*) FROM exp_candidates WHERE exp_id=?"),
        ("nights", "SELECT count(*) FROM exp_nights WHERE exp_id=?"),
    ):
        out[key] = int(await store.value(sql, (exp_id,)))
    return out


# --- cells ------------------------------------------------------------------------------------


def _cell(row: dict[str, Any]) -> CellRow:
    return CellRow(**{**row, "resolved": bool(row["resolved"]), "reused": bool(row["reused"])})


async def find_cell(
    store: Store, exp_id: str, arm: str, seed: int, cycle: int, phase: str, chunk: int, task_id: str
) -> CellRow | None:
    rows = await _rows(
        store,
        "SELECT * FROM exp_cells WHERE exp_id=? AND arm=? AND seed=? AND cycle=? AND phase=? AND chunk=? AND task_id=?",
        (exp_id, arm, seed, cycle, phase, chunk, task_id),
    )
    return _cell(rows[0]) if rows else None


async def find_measurement(store: Store, exp_id: str, fingerprint: str, task_id: str, seed: int) -> CellRow | None:
    """A recorded cell measured under exactly these conditions, if any (the first recorded)."""
    rows = await _rows(
        store,
        "SELECT * FROM exp_cells WHERE exp_id=? AND fingerprint=? AND task_id=? AND seed=? "
        "ORDER BY created_at, rowid LIMIT 1",
        (exp_id, fingerprint, task_id, seed),
    )
    return _cell(rows[0]) if rows else None


async def record_cell(store: Store, cell: CellRow) -> None:
    """The cell, and the end of its episode's pending mark, in one transaction."""
    data = cell.model_dump()
    data["resolved"] = int(cell.resolved)
    data["reused"] = int(cell.reused)
    await _transaction(
        store,
        [
            (
                f"INSERT OR IGNORE INTO exp_cells({', '.join(_CELL_COLS)}) VALUES({', '.join('?' * len(_CELL_COLS))})",
                tuple(data[c] for c in _CELL_COLS),
            ),
            ("DELETE FROM exp_pending WHERE exp_id=? AND episode_id=?", (cell.exp_id, cell.episode_id)),
        ],
    )


async def add_pending(store: Store, exp_id: str, fingerprint: str, task_id: str, seed: int, episode_id: str) -> None:
    """Mark an episode as measuring these conditions before it starts. A process killed after
    the episode finished but before its cell was recorded leaves the mark, and the rerun takes
    the finished episode instead of running it again."""
    await _transaction(
        store,
        [
            (
                "INSERT OR REPLACE INTO exp_pending(exp_id, fingerprint, task_id, seed, episode_id, created_at) "
                "VALUES(?,?,?,?,?,?)",
                (exp_id, fingerprint, task_id, seed, episode_id, time.time()),
            )
        ],
    )


async def pending_episodes(store: Store, exp_id: str, fingerprint: str, task_id: str, seed: int) -> list[str]:
    rows = await _rows(
        store,
        "SELECT episode_id FROM exp_pending WHERE exp_id=? AND fingerprint=? AND task_id=? AND seed=? "
        "ORDER BY created_at",
        (exp_id, fingerprint, task_id, seed),
    )
    return [r["episode_id"] for r in rows]


async def drop_pending(store: Store, exp_id: str, episode_id: str) -> None:
    await _transaction(store, [("DELETE FROM exp_pending WHERE exp_id=? AND episode_id=?", (exp_id, episode_id))])


async def get_cells(
    store: Store, exp_id: str, *, arm: str | None = None, phase: str | None = None
) -> list[CellRow]:
    sql = "SELECT * FROM exp_cells WHERE exp_id=?"
    params: list[Any] = [exp_id]
    if arm is not None:
        sql += " AND arm=?"
        params.append(arm)
    if phase is not None:
        sql += " AND phase=?"
        params.append(phase)
    sql += " ORDER BY arm, seed, cycle, phase, chunk, task_id"
    return [_cell(r) for r in await _rows(store, sql, tuple(params))]


# --- nights -----------------------------------------------------------------------------------


def _candidate(row: dict[str, Any]) -> CandidateRow:
    return CandidateRow(**{**row, **{k: json.loads(row[k]) for k in _CAND_JSON}})


async def get_candidate(store: Store, exp_id: str, arm: str, seed: int, cycle: int) -> CandidateRow | None:
    rows = await _rows(
        store,
        "SELECT * FROM exp_candidates WHERE exp_id=? AND arm=? AND seed=? AND cycle=?",
        (exp_id, arm, seed, cycle),
    )
    return _candidate(rows[0]) if rows else None


async def get_candidates(store: Store, exp_id: str) -> list[CandidateRow]:
    rows = await _rows(
        store, "SELECT * FROM exp_candidates WHERE exp_id=? ORDER BY arm, seed, cycle", (exp_id,)
    )
    return [_candidate(r) for r in rows]


async def record_candidate(store: Store, cand: CandidateRow, adapter: dict[str, Any] | None = None) -> None:
    """The candidate, and (for an adapter) its row in the adapter registry, in one transaction."""
    data = cand.model_dump()
    for k in _CAND_JSON:
        data[k] = json.dumps(data[k])
    cols = list(data)
    statements: list[tuple[str, tuple[Any, ...]]] = [
        (
            f"INSERT OR REPLACE INTO exp_candidates({', '.join(cols)}) VALUES({', '.join('?' * len(cols))})",
            tuple(data[c] for c in cols),
        )
    ]
    if adapter is not None:
        acols = list(adapter)
        statements.append(
            (
                f"INSERT OR REPLACE INTO adapters({', '.join(acols)}) VALUES({', '.join('?' * len(acols))})",
                tuple(adapter[c] for c in acols),
            )
        )
    await _transaction(store, statements)


def _night(row: dict[str, Any]) -> NightRow:
    return NightRow(**{**row, "adopted": bool(row["adopted"]), **{k: json.loads(row[k]) for k in _NIGHT_JSON}})


async def get_night(store: Store, exp_id: str, arm: str, seed: int, cycle: int) -> NightRow | None:
    rows = await _rows(
        store,
        "SELECT * FROM exp_nights WHERE exp_id=? AND arm=? AND seed=? AND cycle=?",
        (exp_id, arm, seed, cycle),
    )
    return _night(rows[0]) if rows else None


async def get_nights(store: Store, exp_id: str) -> list[NightRow]:
    rows = await _rows(store, "SELECT * FROM exp_nights WHERE exp_id=? ORDER BY arm, seed, cycle", (exp_id,))
    return [_night(r) for r in rows]


async def record_night(store: Store, night: NightRow) -> None:
    data = night.model_dump()
    data["adopted"] = int(night.adopted)
    for k in _NIGHT_JSON:
        data[k] = json.dumps(data[k])
    cols = list(data)
    await _transaction(
        store,
        [
            (
                f"INSERT OR REPLACE INTO exp_nights({', '.join(cols)}) VALUES({', '.join('?' * len(cols))})",
                tuple(data[c] for c in cols),
            )
        ],
    )


async def tool_call_count(store: Store, episode_id: str) -> int:
    """Executed tool calls of an episode (malformed replies and <done> are not tool calls)."""
    return int(
        await store.value(
            "SELECT count(*) FROM steps WHERE episode_id=? AND ok IS NOT NULL AND tool NOT IN ('(malformed)', 'done')",
            (episode_id,),
        )
    )


__all__ = [
    "CandidateRow",
    "CellRow",
    "add_pending",
    "drop_pending",
    "pending_episodes",
    "ExperimentRow",
    "NightRow",
    "claim_experiment",
    "experiment_counts",
    "find_cell",
    "find_measurement",
    "get_candidate",
    "get_candidates",
    "get_cells",
    "get_experiment",
    "get_night",
    "get_nights",
    "list_experiments",
    "record_candidate",
    "record_cell",
    "record_night",
    "set_experiment_status",
    "tool_call_count",
]
