"""How fast does `edit` find its place in a 10,000-line file, next to a difflib scan of the same windows?

Run: .venv/bin/python bench/bench_fuzzy_edit.py [--reps N]

Three cases: `old` copied exactly, `old` with its indentation and spacing mangled, and `old`
with two typos. Ours is the whole `locate` call (exact, whitespace-tolerant and fuzzy passes
as needed, window construction included). The baseline scores every window of the same line
count with difflib.SequenceMatcher.ratio (query cached as seq2, windows prebuilt and not
timed) and takes the best: what a fuzzy edit without rapidfuzz would cost."""

from __future__ import annotations

import argparse
import difflib
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from looper_engine.tools.edit import _norm, _trim_blank, _windows, locate  # noqa: E402

WORDS = (
    "user order item cart price total count name value index record cache token session "
    "request response payload config path file line score batch step model event queue "
    "result status error retry limit offset buffer stream report metric handler client"
).split()

#: per full difflib scan above this, the baseline is measured on a sample of windows and extrapolated
BASELINE_FULL_SCAN_MAX_S = 4.0


def make_file(n_lines: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    out: list[str] = ["import json", "import math", "from pathlib import Path", "", ""]
    c = 0
    while len(out) < n_lines:
        c += 1
        cls = "".join(w.title() for w in rng.sample(WORDS, 2)) + str(c)
        out += [f"class {cls}:", f'    """Keeps {rng.choice(WORDS)} and {rng.choice(WORDS)} together."""', ""]
        out += ["    def __init__(self, " + ", ".join(rng.sample(WORDS, 3)) + "):"]
        out += [f"        self.{w} = {w}" for w in rng.sample(WORDS, 3)]
        out.append("")
        for _ in range(rng.randint(3, 7)):
            a, b, d = rng.sample(WORDS, 3)
            out += [
                f"    def {a}_{b}(self, {d}, limit={rng.randint(1, 99)}):",
                f"        {a} = self.{b}.get({d}, {rng.randint(0, 9)})",
                f"        if {a} > limit:",
                f"            raise ValueError(f'{a} {{{a}}} over {{limit}}')",
                f"        for i in range({d}):",
                f"            {a} += math.sqrt(i) * {rng.random():.3f}",
                f"        return json.dumps({{'{a}': {a}, '{b}': self.{b}}})",
                "",
            ]
        out.append("")
    return "\n".join(out[:n_lines]) + "\n"


def pick_block(text: str, near: int, size: int = 6) -> tuple[int, str]:
    lines = text.split("\n")
    i = near
    while not lines[i].lstrip().startswith("def ") or not lines[i].startswith("    def"):
        i += 1
    return i, "\n".join(lines[i : i + size])


def mangle_whitespace(block: str) -> str:
    return "\n".join(" ".join(line.split()).replace("(", "( ").replace(",", " ,") for line in block.split("\n"))


def add_typos(block: str, rng: random.Random, n: int = 2) -> str:
    chars = list(block)
    letters = [i for i, ch in enumerate(chars) if ch.isalpha()]
    for i in rng.sample(letters, n):
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
    return "".join(chars)


def median_time(fn: Callable[[], object], reps: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def difflib_scan(query: str, windows: list[str], indices: range | list[int]) -> tuple[int, float]:
    sm = difflib.SequenceMatcher(None, autojunk=False)
    sm.set_seq2(query)
    best, best_i = -1.0, -1
    for i in indices:
        sm.set_seq1(windows[i])
        r = sm.ratio()
        if r > best:
            best, best_i = r, i
    return best_i, best * 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--lines", type=int, default=10_000)
    args = parser.parse_args()

    text = make_file(args.lines)
    lines = text.split("\n")
    start, block = pick_block(text, near=len(lines) * 6 // 10)
    rng = random.Random(3)
    cases = {
        "exact": block,
        "whitespace": mangle_whitespace(block),
        "fuzzy (2 typos)": add_typos(block, rng),
    }
    print(f"file: {len(lines) - 1} lines, {len(text):,} chars; target block: lines {start + 1}-{start + 6}")
    print(f"{'case':<18}{'strategy':<12}{'found':>8}{'ours ms':>10}{'difflib ms':>12}{'speedup':>9}")
    notes: list[str] = []
    for name, old in cases.items():
        ours_s, match = median_time(lambda old=old: locate(text, old, fuzzy=True, threshold=90.0), args.reps)
        assert match.start == start, f"{name}: found line {match.start + 1}, expected {start + 1}"

        old_lines = _trim_blank(old.split("\n"))
        query = "\n".join(_norm(line) for line in old_lines)
        windows = _windows([_norm(line) for line in lines], len(old_lines))
        sample = list(range(0, len(windows), max(1, len(windows) // 500)))
        sample_s, _ = median_time(lambda q=query, w=windows, ix=sample: difflib_scan(q, w, ix), 3)
        per_window = sample_s / len(sample)
        if per_window * len(windows) <= BASELINE_FULL_SCAN_MAX_S:
            base_s, (found, _) = median_time(
                lambda q=query, w=windows: difflib_scan(q, w, range(len(w))), 3
            )
            assert found == start, f"difflib found line {found + 1}"
            label = ""
        else:
            base_s = per_window * len(windows)
            label = "*"
            notes.append(
                f"* {name}: difflib measured on {len(sample)} of {len(windows)} windows and extrapolated"
            )
        print(
            f"{name:<18}{match.strategy:<12}{match.start + 1:>8}{ours_s * 1e3:>10.2f}"
            f"{base_s * 1e3:>11.1f}{label:1}{base_s / ours_s:>8.0f}x"
        )
    print(f"medians: ours over {args.reps} runs, difflib over 3 runs; same process, same windows")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
