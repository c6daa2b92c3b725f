"""Merge booked time slots into busy blocks for the calendar view.

Slots are closed intervals (start, end) in minutes since midnight: a slot that
ends at 10:00 and one that starts at 10:00 form one continuous busy block.
"""


def merge_intervals(slots: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(slots):
        if start > end:
            raise ValueError(f"slot ({start}, {end}) ends before it starts")
        if merged and start < merged[-1][1]:
            last_start, last_end = merged[-1]
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def free_gaps(slots: list[tuple[int, int]], day_start: int, day_end: int) -> list[tuple[int, int]]:
    """Free periods between the busy blocks, within [day_start, day_end]."""
    gaps = []
    cursor = day_start
    for start, end in merge_intervals(slots):
        if start > cursor:
            gaps.append((cursor, min(start, day_end)))
        cursor = max(cursor, end)
    if cursor < day_end:
        gaps.append((cursor, day_end))
    return gaps
