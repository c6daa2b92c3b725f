"""The engine never imports the TUI or textual, and its core never imports rich (only the
command-line modules do): it stays usable from scripts and notebooks."""

import subprocess
import sys

import pytest

CORE = [
    "looper_engine.events",
    "looper_engine.config",
    "looper_engine.protocol.parser",
    "looper_engine.tools.runner",
    "looper_engine.agent.episode",
    "looper_engine.agent.runner",
    "looper_engine.agent.fork",
    "looper_engine.models.registry",
    "looper_engine.models.scripted",
    "looper_engine.store.db",
    "looper_engine.store.writer",
    "looper_engine.store.replay",
    "looper_engine.tasks.suites",
    "looper_engine.consolidation.synth",
    "looper_engine.evaluation.metrics",
]


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_neither_textual_nor_rich(module):
    code = (
        f"import sys, {module}; "
        "bad = [m for m in ('textual', 'rich', 'looper_tui') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
