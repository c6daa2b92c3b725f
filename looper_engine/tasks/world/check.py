"""The light test runner of task-world workspaces: stdlib only, one process, ~10 ms.

It runs as `python -I -S -c <this source> TEST_FILE` in the workspace, so nothing outside the
standard library is imported and the workspace cannot shadow it. It imports the test file,
calls every `test_*` function in the order they are defined, each under a wall-clock alarm
(a wrong operator in a `while` loops forever), and prints what pytest would: a section per
failure with an `E` line, a short summary and `N failed, M passed in Xs`. After a test timed
out the rest are not run (they would most likely loop too) and count as failed. Exit status 0 when
every test passed, 1 when one failed, 2 when the file could not be imported, 5 when it has
no tests (pytest's codes).
"""

import _signal as signal  # the C module: `signal` imports enum, which doubles the start-up time
import os
import sys
import time

#: Seconds one test may run before it is stopped.
TEST_TIMEOUT_S = 1.0
#: Address space the run may use (a runaway list cannot eat the machine).
MEMORY_LIMIT_BYTES = 1 << 30


class Timeout(BaseException):
    """A test ran past its time; BaseException so that `except Exception` in the code under
    test cannot swallow it."""


def _on_alarm(signum: int, frame: object) -> None:
    raise Timeout()


def _limit_memory() -> None:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > MEMORY_LIMIT_BYTES:
            resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, hard))
    except (ImportError, ValueError, OSError):
        pass  # a platform without the limit still has the alarm


def _trace(exc: BaseException) -> str:
    """The traceback from the test on (not this runner's own frame), as Python prints it,
    without importing traceback (slow to start)."""
    lines = ["Traceback (most recent call last):"]
    sources: dict[str, list[str]] = {}
    tb = exc.__traceback__
    if tb is not None and tb.tb_frame.f_code is run.__code__:
        tb = tb.tb_next
    while tb is not None:
        code = tb.tb_frame.f_code
        lines.append(f'  File "{code.co_filename}", line {tb.tb_lineno}, in {code.co_name}')
        if code.co_filename not in sources:
            try:
                with open(code.co_filename, encoding="utf-8") as handle:
                    sources[code.co_filename] = handle.read().split("\n")
            except OSError:
                sources[code.co_filename] = []
        source = sources[code.co_filename]
        if 0 < tb.tb_lineno <= len(source) and source[tb.tb_lineno - 1].strip():
            lines.append("    " + source[tb.tb_lineno - 1].strip())
        tb = tb.tb_next
    lines.append(_describe(exc))
    return "\n".join(lines)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    name = type(exc).__name__
    return f"{name}: {text[0]}" if text else name


def run(test_file: str) -> int:
    started = time.monotonic()
    sys.dont_write_bytecode = True
    sys.path.insert(0, os.getcwd())
    name = os.path.splitext(os.path.basename(test_file))[0]
    try:
        with open(test_file, encoding="utf-8") as handle:
            source = handle.read()
        module = type(sys)(name)
        module.__file__ = os.path.abspath(test_file)
        sys.modules[name] = module
        signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT_S)
        try:
            exec(compile(source, test_file, "exec"), module.__dict__)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except (Exception, Timeout) as exc:
        print(f"{'_' * 20} ERROR collecting {test_file} {'_' * 20}")
        print(_trace(exc))
        print(f"E       {_describe(exc) if not isinstance(exc, Timeout) else 'Timeout: import did not finish'}")
        print(f"ERROR {test_file}")
        print(f"1 error in {time.monotonic() - started:.2f}s")
        return 2
    tests = [(key, value) for key, value in vars(module).items() if key.startswith("test") and callable(value)]
    if not tests:
        print(f"no tests ran in {time.monotonic() - started:.2f}s")
        return 5
    failures = []
    timed_out = False
    for key, test in tests:
        if timed_out:
            failures.append((key, "Timeout: not run after an earlier test timed out", ""))
            continue
        signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT_S)
        try:
            test()
        except Timeout:
            timed_out = True
            failures.append((key, f"Timeout: {key} did not finish within {TEST_TIMEOUT_S:g}s", ""))
        except Exception as exc:
            failures.append((key, _describe(exc), _trace(exc)))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    for key, line, trace in failures:
        print(f"{'_' * 20} {key} {'_' * 20}")
        if trace:
            print(trace)
        print(f"E       {line}")
    for key, line, _ in failures:
        print(f"FAILED {test_file}::{key} - {line}")
    passed = len(tests) - len(failures)
    parts = ([f"{len(failures)} failed"] if failures else []) + ([f"{passed} passed"] if passed else [])
    print(f"{', '.join(parts)} in {time.monotonic() - started:.2f}s")
    return 1 if failures else 0


def main() -> int:
    signal.signal(signal.SIGALRM, _on_alarm)
    _limit_memory()
    args = sys.argv[1:]
    if len(args) != 1:
        print("usage: check TEST_FILE")
        return 4
    return run(args[0])


if __name__ == "__main__":
    sys.exit(main())
