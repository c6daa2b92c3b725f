"""The layers as declared in pyproject.toml's import-linter contracts, and what they promise a
user: the engine runs without the TUI, and the headless commands run without textual."""

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import looper_engine

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def test_the_declared_layers_hold():
    out = subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout
    for contract in _contracts().values():
        assert f"{contract['name']} KEPT" in out.stdout


def test_the_leaves_may_import_no_other_module_of_the_engine():
    # A module added to the engine later is forbidden to the leaves too, or this fails.
    leaves = _contracts()["leaves"]
    top = {f"looper_engine.{m.name}" for m in pkgutil.iter_modules(looper_engine.__path__)}
    assert set(leaves["forbidden_modules"]) == top - set(leaves["source_modules"])


BLOCK_TEXTUAL = """
import sys
class NoTextual:
    def find_spec(self, name, path=None, target=None):
        if name == "textual" or name.startswith("textual."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTextual())
from looper_tui.main import main
code = main(sys.argv[1:])
assert "textual" not in sys.modules
raise SystemExit(code)
"""


def _looper_without_textual(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TEXTUAL, *args], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )


def test_headless_commands_run_without_textual(tmp_path):
    db = str(tmp_path / "looper.db")
    ran = _looper_without_textual(tmp_path, "run", "--tasks", "off_by_one/paginate", "--db", db, "--quiet")
    assert ran.returncode == 0, ran.stderr
    assert "resolved 1/1" in ran.stdout
    shown = _looper_without_textual(tmp_path, "show", "--db", db, "--list")
    assert shown.returncode == 0 and "off_by_one/paginate" in shown.stdout.split()
    bad = _looper_without_textual(tmp_path, "run", "--model", "nope:x", "--db", db)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_the_lab_without_textual_says_so_and_runs_the_demo_headless(tmp_path):
    # The demo is the whole koan suite: read the first lines, then stop it.
    with subprocess.Popen(
        [sys.executable, "-c", BLOCK_TEXTUAL, "--db", str(tmp_path / "demo.db")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    ) as proc:
        try:
            note = proc.stderr.readline()
            started = proc.stdout.readline() + proc.stdout.readline()
        finally:
            proc.kill()
    assert "the lab needs textual" in note
    assert "scripted policy" in started
