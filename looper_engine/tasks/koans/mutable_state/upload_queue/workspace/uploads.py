"""Housekeeping for the upload queue shared with the uploader thread."""

from dataclasses import dataclass


@dataclass
class Upload:
    name: str
    size: int
    failed: bool = False


def drop_failed(queue: list[Upload]) -> list[Upload]:
    """Remove failed uploads from `queue` in place; return the removed ones."""
    removed = []
    for upload in queue:
        if upload.failed:
            queue.remove(upload)
            removed.append(upload)
    return removed


def pending_bytes(queue: list[Upload]) -> int:
    return sum(upload.size for upload in queue if not upload.failed)
