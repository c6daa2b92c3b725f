"""The one process-group runner, and the small command server that runs it inside a sandbox.

:func:`run_child` starts a command in its own process group, captures its output (the head and
the tail, the middle only counted), times it out, and kills whatever the command left behind.
Looper calls it in a thread for unsandboxed commands; inside a sandbox the same function runs in
:func:`serve`, a loop started once per episode that reads one JSON request per line.

This file imports only the standard library and is started as a script (``python -I -S``), so a
sandbox pays the interpreter's start and nothing more.
"""

from __future__ import annotations

import marshal
import os
import resource
import select
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

# Beyond typing, only builtin modules are imported:
# subprocess and signal pull in enough of the standard library to triple the server's start.
_SIGKILL = 9

#: after the command exits, how long a process that escaped the kill may hold the pipe open
DRAIN_GRACE_S = 2.0
_READ_CHUNK = 1 << 16

#: setrlimit names the requests use, and the resource each one sets
LIMITS: dict[str, int] = {
    "cpu_s": resource.RLIMIT_CPU,
    "memory_bytes": resource.RLIMIT_AS,
    "file_size_bytes": resource.RLIMIT_FSIZE,
    "processes": resource.RLIMIT_NPROC,
}


class Capture:
    """Keeps the first ``head`` and the last ``tail`` bytes of a stream and counts what falls between."""

    def __init__(self, head: int, tail: int) -> None:
        self.head_limit = head
        self.tail_limit = tail
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def feed(self, chunk: bytes) -> None:
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        self.tail += chunk
        excess = len(self.tail) - self.tail_limit
        if excess > 0:
            del self.tail[:excess]
            self.dropped += excess


class _Pipe:
    """The end of a pipe the server keeps, with the two methods the loop below uses."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.closed = False

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


class _Child:
    """A command started with posix_spawn in a new session (the part of subprocess.Popen the
    runner needs): stdout and stderr on one pipe, stdin a pipe or /dev/null."""

    def __init__(self, argv: list[str], cwd: str | None, env: dict[str, str] | None, with_stdin: bool) -> None:
        env = dict(os.environ) if env is None else env
        out_r, out_w = os.pipe()
        actions: list[tuple[int, ...]] = [(os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, out_w, 2)]
        in_r = in_w = -1
        if with_stdin:
            in_r, in_w = os.pipe()
            actions.append((os.POSIX_SPAWN_DUP2, in_r, 0))
        else:
            actions.append((os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0))
        # posix_spawn has no working-directory argument; the server is single-threaded, so it
        # steps into the directory for the spawn and back out.
        here = os.getcwd()
        try:
            if cwd:
                os.chdir(cwd)
            # posix_spawn starts with vfork, several times cheaper than a fork; the pipes are
            # close-on-exec, so only the three dup'ed ends reach the command.
            self.pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions, setsid=True)
        except OSError:
            for fd in (out_r, out_w, in_r, in_w):
                if fd >= 0:
                    os.close(fd)
            raise
        finally:
            os.chdir(here)
        os.close(out_w)
        if in_r >= 0:
            os.close(in_r)
        self.returncode: int | None = None
        self.stdout = _Pipe(out_r)
        self.stdin = _Pipe(in_w) if with_stdin else None

    def _status(self, status: int) -> int:
        return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = self._status(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = self._status(os.waitpid(self.pid, 0)[1])
        return self.returncode


def _spawn(argv: list[str], cwd: str | None, env: dict[str, str] | None, with_stdin: bool) -> _Child:
    """Start a command in its own session. The server (single-threaded) spawns it itself; in
    Looper's own process, threads share the working directory, so subprocess does it there."""
    if _IN_SERVER:
        return _Child(argv, cwd, env, with_stdin)
    import subprocess

    return subprocess.Popen(  # type: ignore[return-value]
        argv, cwd=cwd, env=env, stdin=subprocess.PIPE if with_stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )


def _kill_group(pgid: int) -> bool:
    """SIGKILL every process in the group; True when any was still there."""
    try:
        os.killpg(pgid, _SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


#: True in the command server's process, never in Looper's
_IN_SERVER = False
#: set by :func:`serve` once it has checked that it runs in its own PID namespace; never in Looper
_REAP_ALLOWED = False


def _own_pid_namespace(host_ns: str) -> bool:
    """True only when this server runs in a PID namespace other than ``host_ns`` (the host's, as
    /proc/self/ns/pid names it there) and is among its first processes: the one place where
    killing every other process hits only what the episode's commands started."""
    try:
        mine = os.readlink("/proc/self/ns/pid")
    except OSError:
        return False
    # /proc must be this namespace's own: under the host's /proc, /proc/self names the host pid
    # and a sweep of /proc would kill the host's processes.
    try:
        own_proc = os.readlink("/proc/self") == str(os.getpid())
    except OSError:
        return False
    return bool(host_ns) and mine != host_ns and os.getpid() < 100 and own_proc


def _kill_namespace() -> bool:
    """Inside a sandbox's own PID namespace: SIGKILL every process but its init and this server.

    A daemon started with setsid or nohup has left the command's group; here it still dies.
    Called only after :func:`_own_pid_namespace` said yes."""
    keep = {1, os.getpid()}
    killed = False
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in keep:
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
                    continue  # already dead, waiting for init to reap it
            os.kill(int(name), _SIGKILL)
            killed = True
        except (OSError, IndexError):
            pass
    return killed


def run_child(request: dict[str, Any], cancel_fd: int | None = None) -> dict[str, Any]:
    """Run one command to its end and describe it; never raises for the command's own failures.

    ``request``: argv, cwd, env (None: this process's), timeout_s (None: no limit), stdin (bytes
    or None: closed), head and tail (bytes kept), reap_all (kill every
    process of the PID namespace afterwards). Reading ``cancel_fd`` becoming readable stops the
    command as a timeout would. The reply: returncode (None when timed out or cancelled),
    timed_out, cancelled, leftovers, head, tail, dropped, error (a start failure), duration_s."""
    started = time.monotonic()
    capture = Capture(int(request.get("head", 1 << 20)), int(request.get("tail", 1 << 20)))
    stdin_data: bytes | None = request.get("stdin")
    try:
        proc = _spawn(list(request["argv"]), request.get("cwd"), request.get("env"), stdin_data is not None)
    except OSError as exc:
        return _reply(capture, None, started, error=f"{exc.strerror or exc}: {request['argv'][0]!r}")
    assert proc.stdout is not None
    out_fd = proc.stdout.fileno()
    os.set_blocking(out_fd, False)
    if stdin_data is not None:
        assert proc.stdin is not None
        # A writer thread would be the general answer; a patch fits a pipe's buffer many times
        # over only if small, so write in the loop below as the pipe drains.
        in_fd = proc.stdin.fileno()
        os.set_blocking(in_fd, False)
        pending = memoryview(stdin_data)
    else:
        in_fd, pending = -1, memoryview(b"")
    pidfd = os.pidfd_open(proc.pid) if hasattr(os, "pidfd_open") else -1

    timeout = request.get("timeout_s")
    deadline = started + float(timeout) if timeout is not None else None
    timed_out = cancelled = False
    open_out = True
    while proc.returncode is None:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if pidfd < 0:
            wait = 0.01 if wait is None else min(wait, 0.01)
        readers = [fd for fd in (out_fd if open_out else -1, pidfd, cancel_fd) if fd is not None and fd >= 0]
        writers = [in_fd] if in_fd >= 0 else []
        ready_r, ready_w, _ = select.select(readers, writers, [], wait)
        if out_fd in ready_r and not _read_into(out_fd, capture):
            open_out = False
        if in_fd in ready_w:
            pending, in_fd = _write_some(in_fd, pending, proc)
        if cancel_fd is not None and cancel_fd in ready_r:
            cancelled = True
            break
        if proc.poll() is not None:
            break
        if deadline is not None and time.monotonic() >= deadline:
            timed_out = True
            break
    if in_fd >= 0:
        proc.stdin.close()  # type: ignore[union-attr]
    # Whatever the command left behind (a `server &`, a hung child, or everything on a
    # timeout), dies with its group, so no command leaks processes into the next.
    leftovers = _kill_group(proc.pid)
    if request.get("reap_all") and _REAP_ALLOWED:
        leftovers = _kill_namespace() or leftovers
    proc.wait()
    if pidfd >= 0:
        os.close(pidfd)
    _drain(out_fd, capture, open_out)
    proc.stdout.close()
    code = None if timed_out or cancelled else proc.returncode
    return _reply(capture, code, started, timed_out=timed_out, cancelled=cancelled, leftovers=leftovers)


def _read_into(fd: int, capture: Capture) -> bool:
    """Read what is there; False at the end of the stream."""
    try:
        chunk = os.read(fd, _READ_CHUNK)
    except BlockingIOError:
        return True
    if not chunk:
        return False
    capture.feed(chunk)
    return True


def _write_some(fd: int, pending: memoryview, proc: _Child) -> tuple[memoryview, int]:
    try:
        sent = os.write(fd, pending)
    except BlockingIOError:
        return pending, fd
    except (BrokenPipeError, ConnectionResetError):
        sent = len(pending)  # it stopped reading; its exit status says why
    pending = pending[sent:]
    if not pending:
        proc.stdin.close()  # type: ignore[union-attr]
        return pending, -1
    return pending, fd


def _drain(fd: int, capture: Capture, still_open: bool) -> None:
    """Read the rest of the output; a process that escaped the kill may hold the pipe open,
    so stop listening after DRAIN_GRACE_S."""
    end = time.monotonic() + DRAIN_GRACE_S
    while still_open:
        left = end - time.monotonic()
        if left <= 0:
            return
        ready, _, _ = select.select([fd], [], [], left)
        if ready and not _read_into(fd, capture):
            return


def _reply(
    capture: Capture,
    code: int | None,
    started: float,
    *,
    timed_out: bool = False,
    cancelled: bool = False,
    leftovers: bool = False,
    error: str = "",
) -> dict[str, Any]:
    return {
        "returncode": code,
        "timed_out": timed_out,
        "cancelled": cancelled,
        "leftovers": leftovers,
        "head": bytes(capture.head),
        "tail": bytes(capture.tail),
        "dropped": capture.dropped,
        "error": error,
        "duration_s": time.monotonic() - started,
    }


# ------------------------------------------------------------------------------ the server

_HEADER = 8


def encode(message: dict[str, Any]) -> bytes:
    """One protocol frame: its length, then the message in marshal's format. Host and server run
    the same interpreter, and marshal needs no import (json alone costs the server's start more
    than bubblewrap does)."""
    body = marshal.dumps(message)
    return len(body).to_bytes(_HEADER, "big") + body


def decode(frame: bytes) -> dict[str, Any]:
    """A message from the body of one frame (without its length header)."""
    return marshal.loads(frame)


def apply_limits(limits: dict[str, int]) -> None:
    """Set ``limits`` (hard and soft) on this process, so every command it starts inherits them
    without a function to run between fork and exec (which would make each start a full fork)."""
    for name, value in limits.items():
        if value:
            resource.setrlimit(LIMITS[name], (int(value), int(value)))


def serve(host_ns: str) -> None:
    """Answer requests from stdin on stdout, one at a time, until stdin closes.

    The first frame holds the limits every command runs under. While a command runs, any byte
    arriving on stdin cancels it (the host sends a cancel frame)."""
    in_fd = sys.stdin.fileno()
    out_fd = sys.stdout.fileno()
    buffered = b""

    def frame() -> dict[str, Any] | None:
        nonlocal buffered
        while True:
            if len(buffered) >= _HEADER:
                size = int.from_bytes(buffered[:_HEADER], "big")
                if len(buffered) >= _HEADER + size:
                    body, buffered = buffered[_HEADER : _HEADER + size], buffered[_HEADER + size :]
                    return decode(body)
            chunk = os.read(in_fd, _READ_CHUNK)
            if not chunk:
                return None
            buffered += chunk

    def send(message: dict[str, Any]) -> None:
        data = memoryview(encode(message))
        while data:
            data = data[os.write(out_fd, data) :]

    # Outside its own PID namespace (started by hand, or a sandbox without one) the server never
    # kills beyond each command's process group.
    global _REAP_ALLOWED, _IN_SERVER
    _IN_SERVER = True
    reap_all = _REAP_ALLOWED = _own_pid_namespace(host_ns)
    first = frame()
    if first is None:
        return
    apply_limits(first.get("limits") or {})
    send({"ready": True})
    while True:
        request = frame()
        if request is None:
            return
        if request.get("cancel"):
            continue  # a cancel that arrived after its command had finished
        request["reap_all"] = reap_all
        send(run_child(request, cancel_fd=None if buffered else in_fd))


if __name__ == "__main__":
    ns = [arg.split("=", 1)[1] for arg in sys.argv[1:] if arg.startswith("--reap-all=")]
    serve(ns[0] if ns else "")
