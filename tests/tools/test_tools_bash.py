"""bash: real subprocesses in the workspace, killed as a group, output capped at both ends."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from looper_engine.config import ToolSettings
from looper_engine.protocol.calls import BashCall
from looper_engine.tools import ToolOutcome, Workspace, execute


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    (tmp_path / "mod.py").write_text("VALUE = 41\n")
    return Workspace.attach(tmp_path)


async def bash(ws: Workspace, command: str, **settings: object) -> ToolOutcome:
    return await execute(BashCall(command=command), ws, ToolSettings(**settings))


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie waiting to be reaped by init counts as gone."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc").is_dir():
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        return state not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def gone(pid: int) -> bool:
    # SIGKILL is asynchronous: give the kernel a moment to finish the job before judging.
    for _ in range(100):
        if not alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_runs_in_workspace_and_reports_exit_code(ws: Workspace) -> None:
    out = await bash(ws, "python -c 'import mod; print(mod.VALUE + 1)'; echo oops >&2; exit 3")
    assert not out.ok
    assert out.exit_code == 3
    assert out.output == "42\noops\n[exit code 3]"

    fine = await bash(ws, "pwd")
    assert fine.ok and fine.exit_code == 0
    assert fine.output.splitlines()[0] == str(ws.root)


async def test_python_is_this_interpreter_and_writes_no_bytecode(ws: Workspace) -> None:
    out = await bash(ws, "command -v python; python -c 'import mod'; ls -a")
    assert out.ok
    assert out.output.splitlines()[0] == str(Path(sys.executable).parent / "python")
    assert "__pycache__" not in out.output
    assert not (ws.root / "__pycache__").exists()


async def test_stdin_is_closed(ws: Workspace) -> None:
    out = await bash(ws, "cat", bash_timeout_s=20)
    assert out.ok and out.exit_code == 0
    assert out.output == "(no output)\n[exit code 0]"


async def test_timeout_kills_the_whole_process_group(ws: Workspace) -> None:
    out = await bash(ws, "sleep 1000 & echo $! > child.pid; echo started; sleep 1000", bash_timeout_s=0.5)
    assert not out.ok
    assert out.exit_code is None
    assert out.output.startswith("started\n")
    assert out.output.endswith("[timed out after 0.5s (process group killed)]")
    child = int((ws.root / "child.pid").read_text())
    assert await gone(child)


async def test_background_children_do_not_outlive_the_command(ws: Workspace) -> None:
    out = await bash(ws, "sleep 1000 & echo $! > child.pid; echo launched", bash_timeout_s=30)
    assert out.ok and out.exit_code == 0
    assert "launched" in out.output
    assert "background processes the command left running were killed" in out.output
    child = int((ws.root / "child.pid").read_text())
    assert await gone(child)


async def test_cancelling_the_call_kills_the_group(ws: Workspace) -> None:
    task = asyncio.create_task(bash(ws, "sleep 1000 & echo $! > child.pid; sleep 1000", bash_timeout_s=60))
    pid_file = ws.root / "child.pid"
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await gone(int(pid_file.read_text()))


async def test_output_is_capped_keeping_head_and_tail(ws: Workspace) -> None:
    out = await bash(ws, "seq 1 100000", output_cap_chars=1000)
    assert out.ok and out.truncated
    assert out.output.startswith("1\n2\n3\n")
    assert out.output.endswith("99999\n100000\n[exit code 0]")
    marker = re.search(r"\[\.\.\. (\d+) characters elided \.\.\.\]", out.output)
    assert marker is not None and int(marker.group(1)) > 500_000
    assert len(out.output) < 1200


async def test_reports_files_the_command_changed(ws: Workspace) -> None:
    out = await bash(ws, "echo hi > new.txt && echo 'VALUE = 1' > mod.py")
    assert out.changed_files == ["mod.py", "new.txt"]
    still = await bash(ws, "cat new.txt")
    assert still.changed_files == []


async def test_empty_command_is_explained(ws: Workspace) -> None:
    out = await bash(ws, "   ")
    assert not out.ok and "empty" in out.output
