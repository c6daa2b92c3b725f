"""Threads that run mlx work and leave no mlx state behind when they end.

mlx keeps per-thread streams whose C++ destructors run when the thread's storage is torn
down; for a worker thread still holding them at interpreter exit that happens after Python
is gone, and the process aborts ("terminate called without an active exception", exit
134) after its work is done. mlx's remedy is `mx.clear_streams()` called in the thread
itself, once, as its last mlx call: a stream cleared is gone for that thread, so a pooled
thread cannot clear between tasks. `MlxExecutor` is therefore a single long-lived thread
that clears its streams only when it is shut down, and every executor still open when
the interpreter begins to exit is shut down before Python's own thread pools are joined.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import queue
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")

_LIVE: weakref.WeakSet[MlxExecutor] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()
_STOP = object()


def clear_thread_streams() -> None:
    """Free the mlx streams the calling thread made (nothing when mlx was never imported)."""
    mx = sys.modules.get("mlx.core")
    clear = getattr(mx, "clear_streams", None)
    if clear is None:
        return
    try:
        clear()
    except Exception:  # mlx refuses when there is nothing to clear in some versions
        pass


class MlxExecutor(Executor):
    """One worker thread, started on first use, that runs submitted calls in order and
    clears its mlx streams before it ends. Usable with `loop.run_in_executor`."""

    def __init__(self, name: str = "looper-mlx") -> None:
        self.name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        with _LIVE_LOCK:
            _LIVE.add(self)

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.name}: cannot run new work after shutdown")
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self.name)
                self._thread.start()
            future: Future[T] = Future()
            self._queue.put((future, fn, args, kwargs))
            return future

    def _work(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                future, fn, args, kwargs = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # handed to whoever waits on the future
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                del item, future, fn, args, kwargs
        finally:
            clear_thread_streams()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Run what is queued (or cancel it), clear the thread's mlx streams, end the thread;
        with `wait`, return once it has ended. Idempotent."""
        with self._lock:
            first = not self._closed
            self._closed = True
            thread = self._thread
            if first and thread is not None:
                if cancel_futures:
                    pending = []
                    while True:
                        try:
                            pending.append(self._queue.get_nowait())
                        except queue.Empty:
                            break
                    for item in pending:
                        if item is not _STOP:
                            item[0].cancel()
                self._queue.put(_STOP)
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()


def shutdown_all() -> None:
    """Shut down every executor still open and wait for their threads."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for executor in live:
        executor.shutdown(wait=True)


_shared: MlxExecutor | None = None
_shared_lock = threading.Lock()


def shared_executor() -> MlxExecutor:
    """The process's thread for one-off mlx work (training, building a model)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared._closed:
            _shared = MlxExecutor("looper-mlx-work")
        return _shared


async def to_mlx_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`asyncio.to_thread` for mlx work: the call runs on the shared mlx thread, with the
    caller's context variables."""
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    call = functools.partial(ctx.run, fn, *args, **kwargs)
    return await loop.run_in_executor(shared_executor(), call)


def _register_exit_hook() -> None:
    # threading's exit hooks run before non-daemon threads are joined and while the
    # interpreter is whole; later registrations run first, so this runs before the
    # concurrent.futures pools are joined.
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # pragma: no cover - every supported Python has it
        import atexit

        atexit.register(shutdown_all)
    else:
        register(shutdown_all)


_register_exit_hook()
