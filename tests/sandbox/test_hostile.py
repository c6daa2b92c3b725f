"""Hostile commands through the real bubblewrap and real subprocesses: each is contained in the
sandbox, and the harmless ones escape with the sandbox off (so the tests prove the sandbox, not
their own setup). The fork storm and the memory hog run only inside the sandbox."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from pathlib import Path

import pytest

from looper_engine.agent.episode import Episode
from looper_engine.config import AgentConfig, ToolSettings
from looper_engine.events import EventBus, Observation
from looper_engine.models.scripted import ScriptedBackend, ScriptedStream
from looper_engine.protocol.calls import BashCall, WriteCall
from looper_engine.sandbox import Limits, SandboxSettings, open_sandbox, resolve_mode
from looper_engine.tasks.model import Task
from looper_engine.tasks.scoring import score_workspace
from looper_engine.tasks.suites import get_task
from looper_engine.tools.runner import execute
from looper_engine.tools.workspace import Workspace

try:
    resolve_mode("bwrap")
    BWRAP = ""
except Exception as exc:  # noqa: BLE001 - the reason is the skip message
    BWRAP = str(exc)

needs_bwrap = pytest.mark.skipif(bool(BWRAP), reason=BWRAP or "bwrap")
SECRET = "ssh-rsa AAAA-not-for-the-model"


class Host:
    """A fake $HOME with a secret, a folder outside the workspace and a workspace, all real."""

    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        (self.home / ".ssh").mkdir(parents=True)
        (self.home / ".ssh" / "id_rsa").write_text(SECRET)
        self.outside = root / "outside"
        (self.outside / "keep").mkdir(parents=True)
        (self.outside / "keep" / "data.txt").write_text("precious")
        self.src = root / "src"
        self.src.mkdir()
        (self.src / "mod.py").write_text("x = 1\n")
        self.parent = root / "workspaces"
        self.parent.mkdir()


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Host:
    h = Host(tmp_path)
    monkeypatch.setenv("HOME", str(h.home))
    return h


@pytest.fixture
def listener():
    """A TCP server on 127.0.0.1 that records whether anyone connected."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(0.2)
    hits: list[bool] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            hits.append(True)
            conn.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield srv.getsockname()[1], hits
    stop.set()
    thread.join()
    srv.close()


def _hostile(host: Host, port: int) -> dict[str, str]:
    """What each attack runs; every one of them is harmless on its own."""
    return {
        "home": f"echo pwned > {host.home}/pwned.txt",
        "tmp": f"echo pwned > {host.outside.parent}/tmp-pwned.txt",
        "dotdot": "echo pwned > ../../outside/dotdot.txt",
        "symlink": f"ln -s {host.outside} link && echo pwned > link/via-link.txt",
        "rm": f"rm -rf {host.outside}/keep",
        "secret": f"cat {host.home}/.ssh/id_rsa",
        "tcp": f"{sys.executable} -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 2)\"",
    }


def _escaped(host: Host, name: str, output: str, hits: list[bool]) -> bool:
    checks = {
        "home": lambda: (host.home / "pwned.txt").exists(),
        "tmp": lambda: (host.outside.parent / "tmp-pwned.txt").exists(),
        "dotdot": lambda: (host.outside / "dotdot.txt").exists(),
        "symlink": lambda: (host.outside / "via-link.txt").exists(),
        "rm": lambda: not (host.outside / "keep" / "data.txt").exists(),
        "secret": lambda: SECRET in output,
        "tcp": lambda: bool(hits),
    }
    return checks[name]()


async def _run_all(host: Host, port: int, hits: list[bool], mode: str) -> dict[str, tuple[bool, str]]:
    ws = await Workspace.create(host.src, host.parent)
    results: dict[str, tuple[bool, str]] = {}
    try:
        async with open_sandbox(ws.root, SandboxSettings(mode=mode)) as sb:  # type: ignore[arg-type]
            for name, command in _hostile(host, port).items():
                outcome = await execute(BashCall(command=command), ws, ToolSettings(bash_timeout_s=10), sb)
                results[name] = (_escaped(host, name, outcome.output, hits), outcome.output)
            # the sandbox still works after every attack
            alive = await execute(BashCall(command="echo alive > alive.txt && cat alive.txt"), ws, ToolSettings(), sb)
            assert alive.ok and "alive" in alive.output
            assert (ws.root / "alive.txt").read_text() == "alive\n"
    finally:
        ws.cleanup()
    return results


@needs_bwrap
async def test_hostile_commands_are_contained_in_bwrap_and_escape_without_it(host: Host, listener) -> None:
    port, hits = listener
    confined = await _run_all(host, port, hits, "bwrap")
    for name, (escaped, output) in confined.items():
        assert not escaped, f"{name} escaped the sandbox: {output}"
        assert output.strip(), name  # the model is told something
    # the same commands, unconfined, reach the host: the checks above can fail
    unconfined = await _run_all(host, port, hits, "none")
    for name, (escaped, output) in unconfined.items():
        assert escaped, f"{name} did not escape with the sandbox off: {output}"


@needs_bwrap
async def test_a_setsid_daemon_dies_with_its_command_in_bwrap(host: Host) -> None:
    ws = await Workspace.create(host.src, host.parent)
    try:
        async with open_sandbox(ws.root, SandboxSettings(mode="bwrap")) as sb:
            cmd = "setsid nohup sh -c 'sleep 0.5; echo alive > daemon.txt' >/dev/null 2>&1 & echo started"
            out = await execute(BashCall(command=cmd), ws, ToolSettings(), sb)
            assert "background processes the command left running were killed" in out.output
            await execute(BashCall(command="sleep 1"), ws, ToolSettings(), sb)
            assert not (ws.root / "daemon.txt").exists()
    finally:
        ws.cleanup()


async def test_a_setsid_daemon_outlives_its_command_without_a_sandbox(host: Host) -> None:
    ws = await Workspace.create(host.src, host.parent)
    try:
        cmd = "setsid nohup sh -c 'echo $$ > daemon.pid; sleep 0.5; echo alive > daemon.txt' >/dev/null 2>&1 & sleep 0.2"
        await execute(BashCall(command=cmd), ws, ToolSettings())
        pid = int((ws.root / "daemon.pid").read_text())
        try:
            await execute(BashCall(command="sleep 1"), ws, ToolSettings())
            assert (ws.root / "daemon.txt").read_text() == "alive\n"
        finally:
            # our own test's daemon, by its pid
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    finally:
        ws.cleanup()


def _planted_task(src: Path, target: Path) -> Task:
    return Task(
        id="hostile/conftest", suite="hostile", family="hostile", difficulty=1, statement="x",
        source_dir=src, target_files=[], gold=[],
        test_command=["{python}", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
    )


@pytest.mark.parametrize("mode", [pytest.param("bwrap", marks=needs_bwrap), "none"])
async def test_a_planted_conftest_writes_outside_only_without_the_sandbox(host: Host, mode: str) -> None:
    target = host.outside / "from-conftest.txt"
    ws = await Workspace.create(host.src, host.parent)
    try:
        await execute(
            WriteCall(path="conftest.py", content=f"open({str(target)!r}, 'w').write('pwned')\n"), ws, ToolSettings()
        )
        (ws.root / "test_ok.py").write_text("def test_ok():\n    assert True\n")
        async with open_sandbox(ws.root, SandboxSettings(mode=mode)) as sb:  # type: ignore[arg-type]
            score = await score_workspace(_planted_task(host.src, target), ws.root, 60, sandbox=sb)
    finally:
        ws.cleanup()
    if mode == "bwrap":
        assert not target.exists()
        assert not score.resolved and "conftest" in score.output
    else:
        assert target.read_text() == "pwned"


@needs_bwrap
async def test_a_fork_storm_and_a_memory_hog_hit_their_limits(host: Host) -> None:
    settings = SandboxSettings(mode="bwrap", limits=Limits(processes=64, memory_mb=512))
    ws = await Workspace.create(host.src, host.parent)
    try:
        async with open_sandbox(ws.root, settings) as sb:
            if not getattr(sb, "process_cap", ""):
                pytest.skip("no process cap here: root without a writable pids cgroup")
            storm = "for i in $(seq 400); do sleep 30 & done; echo spawned"
            out = await execute(BashCall(command=storm), ws, ToolSettings(bash_timeout_s=2), sb)
            assert "Resource temporarily unavailable" in out.output
            hog = f"{sys.executable} -c 'x = bytearray(4 << 30)'"
            out = await execute(BashCall(command=hog), ws, ToolSettings(), sb)
            assert not out.ok and "MemoryError" in out.output
            alive = await execute(BashCall(command="echo alive"), ws, ToolSettings(), sb)
            assert alive.ok
    finally:
        ws.cleanup()


class HostileModel(ScriptedBackend):
    """A model whose turns are the hostile commands, then <done>."""

    def __init__(self, turns: list[str]) -> None:
        super().__init__("oracle")
        self.turns = turns

    def for_task(self, task: Task) -> HostileModel:
        bound = HostileModel(self.turns)
        bound.task = task
        return bound

    def stream(self, messages, options):  # noqa: ANN001, ANN201 - the Backend signature
        text = self.turns[self.turn] if self.turn < len(self.turns) else "<done></done>"
        self.turn += 1
        return ScriptedStream(text, 0.0)


@needs_bwrap
async def test_the_agent_loop_runs_hostile_commands_in_the_sandbox(host: Host, listener) -> None:
    port, hits = listener
    attacks = _hostile(host, port)
    checkout = Path(__file__).resolve().parents[2]
    turns = [f"<bash>{cmd}</bash>" for cmd in attacks.values()]
    # outside /tmp and $HOME the host's files are there, read-only (never run unconfined)
    turns.append(f"<bash>echo pwned > {checkout}/pwned-by-the-model.txt</bash>")
    bus = EventBus()
    sub = bus.subscribe(["observation"])
    task = get_task("off_by_one/date_range")
    cfg = AgentConfig(max_steps=len(turns) + 2, loop_detection=False)
    result = await Episode(task, HostileModel(turns), cfg, bus, workspace_parent=host.parent).run()
    assert result.status in ("failed", "resolved") and result.steps >= len(turns)
    observations = [ev.text for ev in sub.drain() if isinstance(ev, Observation)]
    assert len(observations) >= len(turns)
    for name in attacks:
        assert not _escaped(host, name, "\n".join(observations), hits), name
    assert any("Read-only file system" in text for text in observations)
    assert not (checkout / "pwned-by-the-model.txt").exists()


@needs_bwrap
async def test_a_cancelled_command_stops_and_the_sandbox_answers_the_next(host: Host) -> None:
    import asyncio
    import time

    ws = await Workspace.create(host.src, host.parent)
    try:
        async with open_sandbox(ws.root, SandboxSettings(mode="bwrap")) as sb:
            job = asyncio.ensure_future(execute(BashCall(command="sleep 30"), ws, ToolSettings(), sb))
            await asyncio.sleep(0.3)
            started = time.monotonic()
            job.cancel()
            with pytest.raises(asyncio.CancelledError):
                await job
            assert time.monotonic() - started < 10
            after = await execute(BashCall(command="echo next"), ws, ToolSettings(), sb)
            assert after.ok and after.output.startswith("next")
    finally:
        ws.cleanup()
