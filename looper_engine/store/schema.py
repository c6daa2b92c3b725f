"""Schema and migrations. `MIGRATIONS[i]` takes the database from version i to i+1."""

from __future__ import annotations

SCHEMA_VERSION = 2

MIGRATIONS: list[str] = [
    # 0 -> 1
    """
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        suite TEXT NOT NULL,
        model TEXT NOT NULL,
        model_label TEXT NOT NULL,
        scripted INTEGER NOT NULL DEFAULT 0,
        config TEXT NOT NULL DEFAULT '{}',
        n_tasks INTEGER NOT NULL DEFAULT 0,
        concurrency INTEGER NOT NULL DEFAULT 1,
        status TEXT NOT NULL DEFAULT 'running',
        resolved INTEGER NOT NULL DEFAULT 0,
        total INTEGER NOT NULL DEFAULT 0,
        started_at REAL NOT NULL,
        finished_at REAL,
        owner_pid INTEGER
    );
    CREATE TABLE IF NOT EXISTS episodes (
        id TEXT PRIMARY KEY,
        run_id TEXT REFERENCES runs(id),
        task_id TEXT NOT NULL,
        suite TEXT NOT NULL,
        family TEXT NOT NULL DEFAULT '',
        model TEXT NOT NULL,
        model_label TEXT NOT NULL,
        scripted INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'running',
        resolved INTEGER NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT '',
        steps INTEGER NOT NULL DEFAULT 0,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        loop_alarms INTEGER NOT NULL DEFAULT 0,
        duration_s REAL NOT NULL DEFAULT 0,
        started_at REAL NOT NULL,
        finished_at REAL,
        parent_id TEXT,
        fork_step INTEGER,
        config TEXT NOT NULL DEFAULT '{}',
        owner_pid INTEGER
    );
    CREATE INDEX IF NOT EXISTS episodes_run ON episodes(run_id);
    CREATE INDEX IF NOT EXISTS episodes_started ON episodes(started_at);
    CREATE TABLE IF NOT EXISTS steps (
        episode_id TEXT NOT NULL,
        step INTEGER NOT NULL,
        tool TEXT,
        target TEXT,
        call TEXT,
        ok INTEGER,
        exit_code INTEGER,
        output_chars INTEGER,
        tool_s REAL,
        model_s REAL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        alarm TEXT,
        problem TEXT,
        PRIMARY KEY (episode_id, step)
    );
    CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        episode_id TEXT,
        run_id TEXT,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        step INTEGER,
        ts REAL NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS events_episode ON events(episode_id, seq);
    CREATE INDEX IF NOT EXISTS events_episode_step ON events(episode_id, step);
    CREATE TABLE IF NOT EXISTS scores (
        episode_id TEXT PRIMARY KEY,
        resolved INTEGER NOT NULL,
        tests_passed INTEGER NOT NULL DEFAULT 0,
        tests_failed INTEGER NOT NULL DEFAULT 0,
        output TEXT NOT NULL DEFAULT '',
        error_signature TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE IF NOT EXISTS adapters (
        id TEXT PRIMARY KEY,
        parent_id TEXT,
        strategy TEXT NOT NULL,
        base_model TEXT NOT NULL,
        data_hash TEXT NOT NULL DEFAULT '',
        data_stats TEXT NOT NULL DEFAULT '{}',
        hyperparams TEXT NOT NULL DEFAULT '{}',
        curve TEXT NOT NULL DEFAULT '[]',
        metrics TEXT NOT NULL DEFAULT '{}',
        path TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'ready',
        created_at REAL NOT NULL
    );
    """,
    # 1 -> 2: experiments (day/night cycles). Each finished unit of work is one row, written
    # in one transaction, so a killed experiment resumes by skipping what is recorded.
    """
    CREATE TABLE IF NOT EXISTS experiments (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        spec_hash TEXT NOT NULL,
        spec TEXT NOT NULL,
        source_path TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'running',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        finished_at REAL,
        owner_pid INTEGER
    );
    CREATE TABLE IF NOT EXISTS exp_cells (
        exp_id TEXT NOT NULL,
        arm TEXT NOT NULL,
        seed INTEGER NOT NULL,
        cycle INTEGER NOT NULL,
        phase TEXT NOT NULL,
        chunk INTEGER NOT NULL,
        task_id TEXT NOT NULL,
        episode_id TEXT NOT NULL,
        resolved INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        reused INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT '',
        steps INTEGER NOT NULL DEFAULT 0,
        tokens INTEGER NOT NULL DEFAULT 0,
        tool_calls INTEGER NOT NULL DEFAULT 0,
        loop_alarms INTEGER NOT NULL DEFAULT 0,
        duration_s REAL NOT NULL DEFAULT 0,
        error_signature TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        PRIMARY KEY (exp_id, arm, seed, cycle, phase, chunk, task_id)
    );
    CREATE INDEX IF NOT EXISTS exp_cells_fingerprint ON exp_cells(exp_id, fingerprint, task_id, seed);
    CREATE TABLE IF NOT EXISTS exp_pending (
        exp_id TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        task_id TEXT NOT NULL,
        seed INTEGER NOT NULL,
        episode_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (exp_id, episode_id)
    );
    CREATE TABLE IF NOT EXISTS exp_candidates (
        exp_id TEXT NOT NULL,
        arm TEXT NOT NULL,
        seed INTEGER NOT NULL,
        cycle INTEGER NOT NULL,
        skipped TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL DEFAULT '{}',
        episodes TEXT NOT NULL DEFAULT '[]',
        curve TEXT NOT NULL DEFAULT '[]',
        data_stats TEXT NOT NULL DEFAULT '{}',
        notes TEXT NOT NULL DEFAULT '[]',
        seconds REAL NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        PRIMARY KEY (exp_id, arm, seed, cycle)
    );
    CREATE TABLE IF NOT EXISTS exp_nights (
        exp_id TEXT NOT NULL,
        arm TEXT NOT NULL,
        seed INTEGER NOT NULL,
        cycle INTEGER NOT NULL,
        adopted INTEGER NOT NULL,
        verdict TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        PRIMARY KEY (exp_id, arm, seed, cycle)
    );
    """,
]
