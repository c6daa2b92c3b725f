"""Split recipients into batches for the bulk e-mail sender."""

from typing import Iterator, Sequence


def batch_count(total: int, size: int) -> int:
    if size < 1:
        raise ValueError("the batch size must be at least 1")
    return math.ceil(total / size)


def batches(items: Sequence, size: int) -> Iterator[Sequence]:
    """Consecutive slices of at most `size` items."""
    for index in range(batch_count(len(items), size)):
        yield items[index * size : (index + 1) * size]


def describe_plan(total: int, size: int) -> str:
    count = batch_count(total, size)
    return f"{total} recipients in {count} batch{'es' if count != 1 else ''} of up to {size}"
