"""The headless command line, run as a user runs it (a subprocess)."""

import json
import sqlite3
import subprocess
import sys

import pytest


def looper(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "looper_engine.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    db = d / "looper.db"
    r = looper("run", "--tasks", "off_by_one/paginate", "--tasks", "dict_set/word_count", "--db", str(db), "--quiet")
    return d, db, r


def test_run_resolves_records_and_summarises(ran):
    _, db, r = ran
    assert r.returncode == 0, r.stderr
    assert "resolved 2/2" in r.stdout and "scripted policy" in r.stdout
    con = sqlite3.connect(db)
    statuses = con.execute("SELECT task_id, status FROM episodes ORDER BY task_id").fetchall()
    assert statuses == [("dict_set/word_count", "resolved"), ("off_by_one/paginate", "resolved")]
    assert con.execute("SELECT count(*) FROM steps").fetchone()[0] >= 8


def test_show_replays_an_episode_and_list_lists_them(ran):
    _, db, _ = ran
    r = looper("show", "--db", str(db))
    assert r.returncode == 0
    assert "step 1" in r.stdout and "resolved" in r.stdout
    listed = looper("show", "--db", str(db), "--list")
    assert listed.stdout.count("ep-") >= 2


def test_export_writes_one_json_line_per_episode(ran):
    d, db, _ = ran
    out = d / "eps.jsonl"
    r = looper("export", "--db", str(db), "--out", str(out))
    assert r.returncode == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 2
    assert lines[0]["messages"][0]["role"] == "system" and lines[0]["steps"][-1]["call"]["tool"] == "done"


def test_tasks_lists_ids_that_run_accepts():
    r = looper("tasks")
    ids = r.stdout.split()
    assert len(ids) >= 40 and "off_by_one/paginate" in ids


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "--model", "nonsense"], "model spec"),
        (["run", "--model", "gpt:4"], "unknown model kind"),
        (["run", "--model", "scripted:genius"], "unknown scripted policy"),
        (["run", "--tasks", "no_such/task"], "no task matches"),
        (["run", "--suite", "nope"], "unknown suite"),
        (["run", "--concurrency", "0"], "concurrency"),
        (["run", "--bogus-flag"], "unrecognized arguments"),
        (["run", "--max-steps", "0"], "bad agent setting"),
        (["show", "ep-nope", "--db", "DB"], "no episode"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(ran, args, needle):
    _, db, _ = ran
    before = db.read_bytes()
    r = looper(*[str(db) if a == "DB" else a for a in args])
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr and r.stderr.strip().count("\n") == 0
    assert db.read_bytes() == before  # nothing in the database damaged


def test_a_corrupt_database_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_text("garbage" * 100)
    r = looper("run", "--tasks", "off_by_one/paginate", "--db", str(bad))
    assert r.returncode == 2 and "not a readable Looper database" in r.stderr
    assert bad.read_text() == "garbage" * 100


def test_piped_tables_fit_80_columns_and_keep_ids_whole(ran):
    _, db, r = ran
    con = sqlite3.connect(db)
    episodes = con.execute("SELECT id, task_id FROM episodes").fetchall()
    listed = looper("show", "--db", str(db), "--list")
    for out in (r.stdout, listed.stdout):
        assert all(len(line) <= 80 for line in out.splitlines()), out
        words = out.split()
        for episode_id, task_id in episodes:
            assert episode_id in words and task_id in words
