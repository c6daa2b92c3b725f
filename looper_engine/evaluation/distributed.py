"""Run an experiment's episodes on a Ray cluster (`looper experiment run FILE --ray ADDRESS`).

Episodes are independent, so each one can run anywhere. The driver (the process that runs
the experiment) sends a Ray task the episode's conditions as plain data: the task (a built-in
koan by id, any other task as its folder's files), the model spec and adapter path, the agent
config, the system prompt and the run and episode ids the driver chose. The worker builds the
backend from the spec, runs the Episode on a bus of its own, collects every event and returns
them serialized with the result. The driver validates the events again and publishes them on
its own bus, in order, so its StoreWriter stays the only writer of the store and the cells are
recorded exactly as for an episode run in-process.

Ray is imported lazily: this module imports (and the non-Ray path works) without it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from looper_engine.errors import UserError

RAY_MISSING = "--ray needs the ray package: pip install -e '.[ray]'"

#: Folders of a task that are not shipped to a worker (a worktree's .git points at the driver's clone).
_SKIP_DIRS = frozenset({".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(RAY_MISSING) from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of an explicit `ray://host:port` or `host:port` address; None for others."""
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def connect(address: str) -> bool:
    """Connect this process to Ray: `local` starts a local Ray with this machine's CPUs, `auto`
    finds a running cluster, anything else is a `ray://host:port` or `host:port` address.
    Reuses a connection that is already there. True if this call started the connection (and so
    should `shutdown()` it). UserError, one line, if ray is missing or the address unreachable."""
    ray = import_ray()
    if address not in ("local", "auto"):
        hp = _host_port(address)
        if hp is None:
            raise UserError(f"--ray {address}: not an address; use auto, local, ray://HOST:PORT or HOST:PORT")
        try:
            with socket.create_connection(hp, timeout=5):
                pass
        except OSError as exc:
            raise UserError(f"--ray {address}: cannot reach a Ray cluster there ({exc.strerror or exc})") from None
    if ray.is_initialized():
        return False
    try:
        if address == "local":
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the user's address
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"--ray {address}: cannot connect to Ray ({first})") from None
    return True


def shutdown() -> None:
    ray = import_ray()
    if ray.is_initialized():
        ray.shutdown()


# --- what travels to the worker -----------------------------------------------------------------


def _is_builtin_koan(task: Any) -> bool:
    if task.suite != "koans":
        return False
    from looper_engine.tasks.koans import load_koans

    return any(t.id == task.id and Path(t.source_dir) == Path(task.source_dir) for t in load_koans())


def _read_tree(root: Path) -> list[tuple[str, str, bytes, int]]:
    """The folder as (relative path, "file" | "link", content or link target, mode) rows."""
    rows: list[tuple[str, str, bytes, int]] = []
    for folder, dirs, files in os.walk(root):
        for d in dirs:
            path = Path(folder, d)
            if path.is_symlink():  # os.walk does not follow it: ship the link itself
                rows.append((path.relative_to(root).as_posix(), "link", os.readlink(path).encode(), 0))
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not Path(folder, d).is_symlink())
        for name in sorted(files):
            path = Path(folder, name)
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                rows.append((rel, "link", os.readlink(path).encode(), 0))
            else:
                rows.append((rel, "file", path.read_bytes(), path.stat().st_mode & 0o777))
    return rows


def _write_tree(rows: list[tuple[str, str, bytes, int]], root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for rel, kind, data, mode in rows:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "link":
            os.symlink(data.decode(), path)
        else:
            path.write_bytes(data)
            os.chmod(path, mode or 0o644)


def task_payload(task: Any) -> dict[str, Any]:
    """A Task as plain data a worker can rebuild it from."""
    if _is_builtin_koan(task):
        return {"task": task.model_dump(mode="json"), "builtin": True, "files": None}
    return {"task": task.model_dump(mode="json"), "builtin": False, "files": _read_tree(Path(task.source_dir))}


def _rebuild_task(data: dict[str, Any], scratch: Path) -> Any:
    from looper_engine.tasks.model import Task

    if data["builtin"]:
        from looper_engine.tasks.koans import load_koans

        task_id = data["task"]["id"]
        for task in load_koans():
            if task.id == task_id:
                return task
        raise UserError(f"koan {task_id} is not in this worker's looper_engine; install the same version")
    folder = scratch / "task"
    _write_tree(data["files"], folder)
    return Task.model_validate({**data["task"], "source_dir": str(folder)})


# --- the worker side ----------------------------------------------------------------------------


async def _run_episode(payload: dict[str, Any]) -> dict[str, Any]:
    from looper_engine.agent.episode import Episode
    from looper_engine.config import AgentConfig
    from looper_engine.events import EventBus
    from looper_engine.models.registry import create_backend

    with tempfile.TemporaryDirectory(prefix="looper-ray-") as tmp:
        task = _rebuild_task(payload["task"], Path(tmp))
        adapters_dir = Path(payload["adapters_dir"]) if payload.get("adapters_dir") else None
        backend = create_backend(payload["model"], adapters_dir=adapters_dir)
        try:
            await backend.check()
            if payload.get("adapter"):
                load = getattr(backend, "load_adapter", None)
                if load is None:
                    raise UserError(f"{payload['model']} cannot load adapters; the adapter layer needs an mlx: model")
                await load(payload["adapter"])
            bus = EventBus()
            sub = bus.subscribe()
            episode = Episode(
                task,
                backend,
                AgentConfig.model_validate(payload["config"]),
                bus,
                run_id=payload["run_id"],
                episode_id=payload["episode_id"],
                system_prompt=payload["system_prompt"],
                workspace_parent=Path(tmp) / "ws",
            )
            result = await episode.run()
            events = [event.model_dump(mode="json") for event in sub.drain()]
            sub.close()
        finally:
            await backend.aclose()
    return {"result": result.model_dump(mode="json"), "events": events}


def run_episode_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Run one episode from plain data (what the Ray task does). Returns the worker's pid, the
    serialized events in publication order and the result, or `error` (one line) instead."""
    out: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(), "error": None}
    try:
        out.update(asyncio.run(_run_episode(payload)))
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which stops the experiment
        out["error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return out


_REMOTE: Any = None


def _remote() -> Any:
    global _REMOTE
    if _REMOTE is None:
        ray = import_ray()
        _REMOTE = ray.remote(num_cpus=1, max_retries=0)(run_episode_payload)
    return _REMOTE


# --- the driver side ----------------------------------------------------------------------------


class RayExecutor:
    """Sends episodes to Ray and publishes what they did on the driver's bus."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._owner = False
        self._refs: set[Any] = set()
        #: episode id -> (host, pid) of the worker process that ran it.
        self.workers: dict[str, tuple[str, int]] = {}

    def start(self) -> RayExecutor:
        self._owner = connect(self.address)
        return self

    def close(self) -> None:
        if self._owner:
            shutdown()
            self._owner = False

    def cancel_all(self) -> None:
        ray = import_ray()
        for ref in list(self._refs):
            try:
                ray.cancel(ref)
            except Exception:  # noqa: BLE001, S110 - already finished
                pass

    async def run_episode(
        self,
        task: Any,
        *,
        model: str,
        adapter: str | None,
        adapters_dir: Path | None,
        config: Any,
        system_prompt: str,
        run_id: str,
        episode_id: str,
        bus: Any,
    ) -> Any:
        """Run the episode on a worker; publish its events on `bus`; its EpisodeResult (status
        "cancelled" when the Ray task was cancelled)."""
        ray = import_ray()
        from looper_engine.agent.episode import EpisodeResult
        from looper_engine.events import event_from_dict

        payload = {
            "task": await asyncio.to_thread(task_payload, task),
            "model": model,
            "adapter": adapter,
            "adapters_dir": str(adapters_dir) if adapters_dir is not None else None,
            "config": config.model_dump(mode="json"),
            "system_prompt": system_prompt,
            "run_id": run_id,
            "episode_id": episode_id,
        }
        ref = _remote().remote(payload)
        self._refs.add(ref)
        try:
            out = await ref
        except asyncio.CancelledError:
            ray.cancel(ref)
            raise
        except ray.exceptions.TaskCancelledError:
            return EpisodeResult(episode_id=episode_id, task_id=task.id, status="cancelled", resolved=False,
                                 reason="cancelled by the user", steps=0)
        except ray.exceptions.RayError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"ray: {task.id} could not be run on the cluster ({first})") from None
        finally:
            self._refs.discard(ref)
        if out.get("error"):
            raise UserError(f"ray worker {out.get('host')} (pid {out.get('pid')}): {task.id}: {out['error']}")
        self.workers[episode_id] = (str(out.get("host")), int(out["pid"]))
        for data in out["events"]:
            bus.publish(event_from_dict(data))
        return EpisodeResult.model_validate(out["result"])


__all__ = ["RAY_MISSING", "RayExecutor", "connect", "import_ray", "run_episode_payload", "shutdown", "task_payload"]
