"""Confinement for every command a model influenced: its bash calls, the tests that score it,
the harness commands of SWE-Bench-CL tasks and the replay of a forked workspace."""

from looper_engine.sandbox.profile import (
    SANDBOX_MODES,
    Limits,
    SandboxKind,
    SandboxMode,
    SandboxSettings,
    recorded_kind,
    sandbox_note,
)
from looper_engine.sandbox.session import (
    ProcResult,
    Sandbox,
    SandboxUnavailable,
    open_sandbox,
    resolve_mode,
    run_direct,
)

__all__ = [
    "SANDBOX_MODES",
    "Limits",
    "ProcResult",
    "Sandbox",
    "SandboxKind",
    "SandboxMode",
    "SandboxSettings",
    "SandboxUnavailable",
    "open_sandbox",
    "recorded_kind",
    "sandbox_note",
    "resolve_mode",
    "run_direct",
]
