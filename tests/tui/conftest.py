import os
import time

import pytest


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No test reads or writes the user's settings or the working directory (where the lab
    looks for `models/minilab` and relative databases), and local time is UTC everywhere."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOOPER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    if "TZ" in os.environ:
        time.tzset()
