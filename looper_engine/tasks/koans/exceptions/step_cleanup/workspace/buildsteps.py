"""Run build steps in scratch directories, always cleaning up after them."""

import shutil
import tempfile
from pathlib import Path
from typing import Callable

Action = Callable[[Path], str]


class StepFailed(Exception):
    pass


def run_step(name: str, action: Action) -> dict:
    """Run `action` in a fresh scratch dir, remove the dir, and report the action's output.

    A failing action fails the step: StepFailed is raised once the scratch dir is gone.
    """
    scratch = Path(tempfile.mkdtemp(prefix=f"step-{name}-"))
    report = {"step": name, "ok": False, "output": "", "scratch": str(scratch)}
    try:
        report["output"] = action(scratch)
        report["ok"] = True
    except Exception as exc:
        raise StepFailed(f"step {name} failed: {exc}") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        return report


def run_pipeline(steps: list[tuple[str, Action]]) -> list[dict]:
    """Run the steps in order; the first failure stops the pipeline."""
    return [run_step(name, action) for name, action in steps]
