"""Write audit events in the background so that request handlers never wait for the disk."""

import asyncio


class AuditWriter:
    def __init__(self, sink: list[str]) -> None:
        self.sink = sink
        self._pending: set[asyncio.Task] = set()

    async def _write(self, event: str) -> None:
        await asyncio.sleep(0)  # the production writer awaits file I/O here
        self.sink.append(event)

    def submit(self, event: str) -> None:
        """Queue an event for writing and return at once."""
        task = asyncio.create_task(self._write(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> None:
        """Wait until every submitted event has been written."""
        for task in self._pending:
            await task
