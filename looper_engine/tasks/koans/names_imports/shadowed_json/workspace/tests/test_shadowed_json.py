import json

import pytest

from jobsummary import read_runs, summarise

LOG = "\n".join(
    [
        '{"job": "backup", "status": "ok", "seconds": 40}',
        "",
        '{"job": "reindex", "status": "failed", "seconds": 95}',
        '{"job": "report", "status": "ok", "seconds": 12}',
    ]
)


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(LOG)
    return path


def test_read_runs(log_file):
    assert [run["job"] for run in read_runs(log_file)] == ["backup", "reindex", "report"]


def test_text(log_file):
    assert summarise(log_file) == "runs: 3\nfailed: 1\nslowest: 95"


def test_json(log_file):
    assert json.loads(summarise(log_file, fmt="json")) == {"runs": 3, "failed": 1, "slowest": 95}


def test_unknown_format(log_file):
    with pytest.raises(ValueError):
        summarise(log_file, fmt="xml")
