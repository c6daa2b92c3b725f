"""Running generated code in-process, in a fresh namespace, with a step limit.

Verifying a thousand instances must not start a thousand interpreters, and a planted bug can
loop forever. A trace function counts the lines executed in the guarded code and stops it past
a limit: deterministic (a count, not a clock), and it works in any thread, unlike an alarm.
"""

from __future__ import annotations

import builtins
import sys
import types
from collections.abc import Callable
from types import FrameType
from typing import Any

#: The file name generated code is compiled under; only its frames are traced.
GUARDED_FILE = "<world>"
#: Lines one guarded call may execute (the fixed code of every template needs a few hundred).
DEFAULT_MAX_LINES = 20_000


class StepLimit(BaseException):
    """Guarded code ran past its line limit (an endless loop). BaseException so that the code
    under test cannot catch it with `except Exception`."""


def call_limited(fn: Callable[..., Any], *args: Any, max_lines: int = DEFAULT_MAX_LINES) -> Any:
    """fn(*args), raising StepLimit once the guarded code has run `max_lines` lines."""
    count = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
            if count > max_lines:
                raise StepLimit()
        return local

    def global_(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename == GUARDED_FILE else None

    previous = sys.gettrace()
    sys.settrace(global_)
    try:
        return fn(*args)
    finally:
        sys.settrace(previous)


def load_module(name: str, source: str) -> types.ModuleType:
    """`source` executed as a fresh module called `name` (not registered in sys.modules)."""
    module = types.ModuleType(name)
    code = compile(source, GUARDED_FILE, "exec")
    call_limited(exec, code, module.__dict__)
    return module


def load_tests(source: str, name: str, imports: dict[str, types.ModuleType]) -> dict[str, Any]:
    """The test file's namespace, its `import`s of the names in `imports` served from there."""

    def importer(
        mod: str,
        globals_: dict[str, Any] | None = None,
        locals_: dict[str, Any] | None = None,
        fromlist: tuple[str, ...] = (),
        level: int = 0,
    ) -> Any:
        if level == 0 and mod in imports:
            return imports[mod]
        return builtins.__import__(mod, globals_, locals_, fromlist, level)

    namespace: dict[str, Any] = {
        "__name__": name,
        "__builtins__": {**vars(builtins), "__import__": importer},
    }
    call_limited(exec, compile(source, GUARDED_FILE, "exec"), namespace)
    return namespace


def run_tests(namespace: dict[str, Any], max_lines: int = DEFAULT_MAX_LINES) -> dict[str, str]:
    """Call every `test*` function of the namespace; the failures as {name: "Type: message"}."""
    failures: dict[str, str] = {}
    for key, value in list(namespace.items()):
        if not (key.startswith("test") and callable(value)):
            continue
        try:
            call_limited(value, max_lines=max_lines)
        except StepLimit:
            failures[key] = "StepLimit: did not finish"
        except Exception as exc:  # noqa: BLE001 - any failure of the code under test is a failed test
            failures[key] = f"{type(exc).__name__}: {exc}"
    return failures
