"""Feed the same text to StreamParser in different chunkings and insist on one outcome."""

from __future__ import annotations

import random
from typing import Any

from looper_engine.protocol.parser import ParseResult, StreamParser


def run_chunks(chunks: list[str], **options: Any) -> tuple[ParseResult, list[dict[str, Any]]]:
    parser = StreamParser(**options)
    events = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.close())
    return parser.result(), [e.model_dump() for e in events]


def random_chunks(text: str, rng: random.Random, largest: int = 12) -> list[str]:
    chunks, i = [], 0
    while i < len(text):
        step = rng.randint(1, largest)
        chunks.append(text[i : i + step])
        i += step
    return chunks


def parse_every_way(text: str, seeds: int = 3, **options: Any) -> ParseResult:
    """Parse `text` whole, one character at a time and in random chunks; all must agree."""
    whole, whole_events = run_chunks([text], **options)
    chunkings = [list(text)]
    chunkings += [random_chunks(text, random.Random(seed)) for seed in range(seeds)]
    for chunks in chunkings:
        result, events = run_chunks(chunks, **options)
        assert result == whole, f"chunking changed the result: {chunks[:20]}"
        assert events == whole_events, f"chunking changed the events: {chunks[:20]}"
    return whole
