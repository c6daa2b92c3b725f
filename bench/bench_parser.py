"""Does the streaming parser stay linear when a long reply arrives one character at a time?

Run: .venv/bin/python bench/bench_parser.py [--reps N] [--big-kb K]

The reply is realistic: reasoning prose (with stray `<` in it) and several large calls, a
write of a whole module first, then an edit, a bash and a done that do not run. It is fed
one character per chunk, the worst case a token stream can produce.

Ours is StreamParser (feed per chunk, then close and result). The baseline is the naive
streaming parser: append the chunk to a buffer, then regex the whole buffer for the first
complete call and for every opened tag, as a parser without a cursor must. The baseline
is measured at small sizes only, since its time grows with the square of the length; both
are measured at those sizes in the same process, and ours also at the big size."""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from looper_engine.protocol.parser import StreamParser  # noqa: E402

WORDS = (
    "parser buffer token stream cursor closing tag body prose chunk offset state "
    "result note call path module test fixture value index record"
).split()


def _module(rng: random.Random, n_chars: int) -> str:
    lines: list[str] = ["import os", "from typing import Any", ""]
    size = 0
    i = 0
    while size < n_chars:
        a, b = rng.sample(WORDS, 2)
        block = [
            f"def {a}_{b}_{i}(items: list[Any], limit: int = {rng.randint(1, 99)}) -> int:",
            f'    """Count {a} entries below the {b} limit; <tags> and a < b in docs are fine."""',
            "    total = 0",
            "    for item in items:",
            f"        if item.{a} < limit and item.{b} > -limit:",
            "            total += 1",
            "    return total",
            "",
        ]
        lines += block
        size += sum(len(x) + 1 for x in block)
        i += 1
    return "\n".join(lines) + "\n"


def make_reply(n_chars: int, seed: int = 3) -> str:
    """About n_chars of prose and calls, shaped like a long model reply."""
    rng = random.Random(seed)
    prose = (
        "The failing test expects parse() to keep going when a < b holds for the offsets, "
        "so List<int>-style generics in docstrings must stay prose. I will rewrite the module "
        "in one go, then patch the caller and run the tests.\n"
    )
    room = max(0, n_chars - 3 * len(prose) - 400)
    body = _module(rng, int(room * 0.7))
    old = _module(rng, int(room * 0.1))
    new = old.replace("total += 1", "total += 2")
    reply = (
        prose
        + f'<write path="src/pkg/{rng.choice(WORDS)}.py">\n```python\n{body}```\n</write>\n'
        + prose
        + f'<edit path="src/pkg/caller.py">\n<old>\n{old}</old>\n<new>\n{new}</new>\n</edit>\n'
        + prose
        + "<bash>pytest -q tests/test_parser.py</bash>\n<done>rewrote the parser module</done>\n"
    )
    while len(reply) < n_chars:
        reply += prose
    return reply


def run_ours(chunks: list[str]) -> int:
    parser = StreamParser()
    opened = 0
    for chunk in chunks:
        for ev in parser.feed(chunk):
            opened += ev.kind == "tag_opened"
    parser.close()
    result = parser.result()
    assert result.call is not None and result.call.tool == "write", result.notes
    return result.extra_calls


_CALL_RE = re.compile(r"<(bash|read|write|edit|done)\b([^>]*)>(.*?)</\1>", re.S)
_OPEN_RE = re.compile(r"<(?:bash|read|write|edit|done)\b[^>]*>")


def run_naive(chunks: list[str]) -> int:
    buf = ""
    first = None
    opened = 0
    for chunk in chunks:
        buf += chunk
        opened = max(opened, len(_OPEN_RE.findall(buf)))
        m = _CALL_RE.search(buf)
        if m is not None and first is None:
            first = m.group(1)
    assert first == "write"
    return len(_CALL_RE.findall(buf)) - 1


def median_time(fn: Callable[[list[str]], int], chunks: list[str], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(chunks)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--big-kb", type=int, default=1024)
    args = ap.parse_args()

    small_kb = [4, 8, 16]
    print(f"1-character chunks, median of {args.reps} runs\n")
    print(
        f"{'size':>8}  {'naive re-parse':>15}  {'StreamParser':>13}  {'naive/ours':>10}  {'ours us/char':>12}"
    )
    prev: tuple[float, float] | None = None
    growth: list[tuple[float, float]] = []
    for kb in small_kb:
        reply = make_reply(kb * 1024)
        chunks = list(reply)
        assert run_ours(chunks) == run_naive(chunks) == 3
        naive = median_time(run_naive, chunks, args.reps)
        ours = median_time(run_ours, chunks, args.reps)
        print(
            f"{len(reply) / 1024:>6.0f}KB  {naive:>14.3f}s  {ours:>12.3f}s  {naive / ours:>9.0f}x  {ours / len(reply) * 1e6:>12.2f}"
        )
        if prev is not None:
            growth.append((naive / prev[0], ours / prev[1]))
        prev = (naive, ours)
    for (g_naive, g_ours), kb in zip(growth, small_kb[1:], strict=True):
        print(f"  doubling to {kb}KB multiplied the time by: naive {g_naive:.1f}x, ours {g_ours:.1f}x")

    reply = make_reply(args.big_kb * 1024)
    chunks = list(reply)
    ours = median_time(run_ours, chunks, args.reps)
    whole = median_time(run_ours, [reply], args.reps)
    print(
        f"\n{args.big_kb}KB reply: StreamParser {ours:.2f}s in 1-char chunks ({ours / len(reply) * 1e6:.2f} us/char)"
    )
    print(f"{args.big_kb}KB reply: StreamParser {whole * 1e3:.1f}ms fed whole")
    extrapolated = prev[0] * (len(reply) / (small_kb[-1] * 1024)) ** 2 if prev else float("nan")
    print(
        f"naive re-parse at {args.big_kb}KB, extrapolated quadratically from {small_kb[-1]}KB: {extrapolated:,.0f}s"
    )


if __name__ == "__main__":
    main()
