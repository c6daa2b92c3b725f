from pathlib import Path

import pytest

from buildsteps import StepFailed, run_pipeline, run_step


def write_file(scratch):
    (scratch / "out.txt").write_text("built")
    return "wrote out.txt"


def explode(scratch):
    raise OSError("disk full")


def test_successful_step_cleans_up():
    report = run_step("build", write_file)
    assert report["ok"] and report["output"] == "wrote out.txt"
    assert not Path(report["scratch"]).exists()


def test_failing_step_raises():
    with pytest.raises(StepFailed, match="step lint failed: disk full"):
        run_step("lint", explode)


def test_failing_step_still_cleans_up(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with pytest.raises(StepFailed):
        run_step("lint", explode)
    assert list(tmp_path.iterdir()) == []


def test_pipeline_stops_at_first_failure():
    ran = []

    def record(scratch):
        ran.append("package")
        return ""

    with pytest.raises(StepFailed):
        run_pipeline([("build", write_file), ("lint", explode), ("package", record)])
    assert ran == []
