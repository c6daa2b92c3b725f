"""Summaries of the nightly job runs, read from a JSON-lines log."""

import json
from pathlib import Path


def read_runs(path: Path) -> list[dict]:
    runs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            runs.append(json.loads(line))
    return runs


def summarise(path: Path, fmt: str = "text") -> str:
    """Counts of runs and failures and the slowest run, as text lines or as JSON."""
    runs = read_runs(path)
    summary = {
        "runs": len(runs),
        "failed": sum(1 for run in runs if run.get("status") == "failed"),
        "slowest": max((run.get("seconds", 0) for run in runs), default=0),
    }
    if fmt == "text":
        return "\n".join(f"{key}: {value}" for key, value in summary.items())
    if fmt != "json":
        raise ValueError(f"unknown format {fmt!r}")
    json = json.dumps(summary, sort_keys=True)
    return json
