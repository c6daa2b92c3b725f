"""What a sandbox allows, and the same settings written as a bubblewrap command line and as a
macOS Seatbelt profile.

The default profile: the host's files read-only, the workspace the only writable place, a
private /tmp, an empty $HOME (the interpreter and its packages bound back read-only where they
live under it), no network, its own PID namespace, and per-command resource limits.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SandboxMode = Literal["auto", "bwrap", "seatbelt", "none"]
#: what actually confines an episode ("none": nothing does)
SandboxKind = Literal["bwrap", "seatbelt", "none"]
SANDBOX_MODES: tuple[str, ...] = ("auto", "bwrap", "seatbelt", "none")

_MB = 1 << 20

#: environment variables a sandboxed command sees from Looper's own environment (an API key
#: or a token in the user's shell does not pass)
ENV_ALLOWED: frozenset[str] = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "SHELL", "VIRTUAL_ENV", "PYTHONPATH"}
)


class Limits(BaseModel):
    """setrlimit values for every command run in the sandbox (0: no limit)."""

    model_config = ConfigDict(extra="forbid")

    cpu_s: int = Field(600, ge=0, description="CPU seconds one command may use")
    memory_mb: int = Field(4096, ge=0, description="address space of one process, MiB")
    file_size_mb: int = Field(1024, ge=0, description="largest file a command may write, MiB")
    processes: int = Field(
        256, ge=0, description="processes a command may start, beyond those the user already runs"
    )


class SandboxSettings(BaseModel):
    """How the commands of one episode are confined."""

    model_config = ConfigDict(extra="forbid")

    mode: SandboxMode = "auto"
    network: bool = False
    limits: Limits = Field(default_factory=Limits)
    #: more folders commands may read (a repository's own environment, say)
    read_only: list[Path] = []


def runtime_paths() -> list[Path]:
    """Folders the interpreter running Looper needs: its prefixes, its executable's folder and
    where Looper itself is installed. Bound read-only so Python and the tests run inside even
    when they live under an emptied $HOME or /tmp."""
    here = Path(__file__).resolve().parents[2]
    candidates = {
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(sys.exec_prefix),
        Path(sys.executable).parent,
        Path(os.path.realpath(sys.executable)).parent,
        here,
    }
    return sorted({p.resolve() for p in candidates if p.exists()})


def _home() -> Path | None:
    home = os.environ.get("HOME")
    if not home or Path(home).resolve() == Path("/"):
        return None
    return Path(home).resolve()


def _under(path: Path, parent: Path) -> bool:
    return path == parent or path.is_relative_to(parent)


def bwrap_args(settings: SandboxSettings, workspace: Path, tmp_home: bool = True) -> list[str]:
    """bubblewrap's options (without the binary and the command) for ``settings`` around ``workspace``.

    Mount order matters: each later mount covers what an earlier one put at its path, so the
    emptied $HOME and /tmp come first and what must stay visible under them is bound back after."""
    ws = workspace.resolve()
    args = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    hidden = [Path("/tmp")]
    home = _home()
    if tmp_home and home is not None and home.is_dir():
        args += ["--tmpfs", str(home)]
        hidden.append(home)
    for path in [*runtime_paths(), *settings.read_only]:
        path = Path(path).resolve()
        if any(_under(path, h) for h in hidden) and not _under(path, ws):
            args += ["--ro-bind", str(path), str(path)]
    args += ["--bind", str(ws), str(ws)]
    args += ["--unshare-all"]
    if settings.network:
        args.append("--share-net")
    # Root in the host keeps its capabilities inside unless told: without them it cannot
    # remount the read-only binds, nor load modules, nor trace the host.
    args += ["--cap-drop", "ALL", "--die-with-parent", "--new-session", "--chdir", str(ws)]
    if home is not None:
        args += ["--setenv", "HOME", str(home)]
    args += ["--setenv", "TMPDIR", "/tmp"]
    return args


def _sb_string(path: Path | str) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def seatbelt_profile(settings: SandboxSettings, workspace: Path, tmp_dir: Path) -> str:
    """An SBPL profile for ``sandbox-exec -p``: reads everywhere but the user's home (the runtime
    read back), writes only to the workspace and ``tmp_dir`` (the episode's private temp folder),
    no network unless ``settings.network``. Later rules take precedence over earlier ones."""
    ws = workspace.resolve()
    lines = [
        "(version 1)",
        "(deny default)",
        "(allow process-exec)",
        "(allow process-fork)",
        "(allow signal (target same-sandbox))",
        "(allow sysctl-read)",
        "(allow mach-lookup)",
        "(allow ipc-posix-shm)",
        "(allow file-read*)",
    ]
    home = _home()
    if home is not None:
        lines.append(f"(deny file-read* (subpath {_sb_string(home)}))")
        readable = [p for p in [*runtime_paths(), *settings.read_only] if _under(Path(p).resolve(), home)]
        for path in readable:
            lines.append(f"(allow file-read* (subpath {_sb_string(Path(path).resolve())}))")
        lines.append(f"(allow file-read* (subpath {_sb_string(ws)}))")
    lines.append(
        f"(allow file-write* (subpath {_sb_string(ws)}) (subpath {_sb_string(tmp_dir)})"
        ' (literal "/dev/null") (literal "/dev/tty"))'
    )
    lines.append("(allow network*)" if settings.network else "(deny network*)")
    return "\n".join(lines) + "\n"


def limit_values(limits: Limits, processes_now: int) -> dict[str, int]:
    """The setrlimit values a request carries. RLIMIT_NPROC counts every process of the user,
    not only the sandbox's, so the budget is added to what the user runs already."""
    return {
        "cpu_s": limits.cpu_s,
        "memory_bytes": limits.memory_mb * _MB,
        "file_size_bytes": limits.file_size_mb * _MB,
        "processes": processes_now + limits.processes if limits.processes else 0,
    }


def user_process_count() -> int:
    """Processes (threads count too, as RLIMIT_NPROC counts them) this user runs now."""
    uid = os.getuid()
    count = 0
    try:
        names = os.listdir("/proc")
    except OSError:
        return 0
    for name in names:
        if not name.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{name}")
            if st.st_uid == uid:
                count += len(os.listdir(f"/proc/{name}/task"))
        except OSError:
            continue
    return count


def recorded_kind(config: dict[str, object]) -> SandboxKind:
    """What confined a stored episode, read off its recorded config. Episodes recorded before
    the sandbox existed carry no setting: they ran unconfined."""
    kind = config.get("sandbox")
    return kind if kind in ("bwrap", "seatbelt") else "none"  # type: ignore[return-value]


def sandbox_note(kinds: list[SandboxKind]) -> str:
    """A line for a table of episodes that mixes sandboxed and unsandboxed ones ('' otherwise)."""
    unconfined = sum(1 for k in kinds if k == "none")
    if not unconfined or unconfined == len(kinds):
        return ""
    return f"note: {unconfined} of {len(kinds)} episodes ran unsandboxed (--sandbox none); the rest were confined"
