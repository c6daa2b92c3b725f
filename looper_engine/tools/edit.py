"""Finding where an edit's `old` text sits in a file: exact, then whitespace-tolerant, then fuzzy.

Small models rarely reproduce a file's lines byte for byte: they drop indentation, collapse
spaces or make a typo. Each fallback is stricter about being unambiguous than about being
exact, because editing the wrong place silently is worse than asking the model again."""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from typing import Literal

from rapidfuzz import fuzz, process

from looper_engine.tools.text import number_lines
from looper_engine.tools.workspace import ToolError

Strategy = Literal["exact", "whitespace", "fuzzy"]

#: Two fuzzy windows scoring within this many points of each other are too close to choose between.
AMBIGUITY_MARGIN = 1.0
_MAX_CANDIDATES = 8
_SNIPPET_LINES = 12


class EditNotFound(ToolError):
    """The `old` text matches nowhere closely enough."""


class EditAmbiguous(ToolError):
    """The `old` text matches more than one place."""


@dataclass(frozen=True)
class Match:
    """Where `old` was found: 0-based line indices [start, end) of the file's lines."""

    strategy: Strategy
    start: int
    end: int
    score: float = 100.0
    #: character span of an exact match (exact matches may cover part of a line)
    span: tuple[int, int] | None = None


@dataclass(frozen=True)
class EditResult:
    text: str
    match: Match
    #: 1-based inclusive line range the replacement occupies in the new text (empty when new_end < new_start)
    new_start: int
    new_end: int


def _norm(line: str) -> str:
    return " ".join(line.split())


def _squash(line: str) -> str:
    # Code lines that differ only in whitespace are the same tokens; spacing carries no meaning here.
    return "".join(line.split())


def _trim_blank(lines: list[str]) -> list[str]:
    lo, hi = 0, len(lines)
    while lo < hi and not lines[lo].strip():
        lo += 1
    while hi > lo and not lines[hi - 1].strip():
        hi -= 1
    return lines[lo:hi]


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _common_indent(lines: list[str]) -> str:
    indents = [_indent(line) for line in lines if line.strip()]
    return os.path.commonprefix(indents) if indents else ""


def _reindent(new_lines: list[str], old_lines: list[str], file_lines: list[str]) -> list[str]:
    """Give `new` the file's indentation where the model's `old` had its own.

    Each indentation level seen in `old` maps to the level of the file line it matched, so a
    model that wrote 2-space or unindented code still produces lines that fit the file. A
    level of `new` deeper than any in `old` keeps its extra depth, scaled by the ratio of the
    file's indent unit to the model's."""
    pairs = [(_indent(o), _indent(f)) for o, f in zip(old_lines, file_lines, strict=False) if o.strip() and f.strip()]
    if all(o == f for o, f in pairs):
        return new_lines
    mapping: dict[str, str] = {}
    for o, f in pairs:
        mapping.setdefault(o, f)
    old_widths = [len(o) for o, _ in pairs]
    file_widths = [len(f) for _, f in pairs]
    scale = 1.0
    if max(old_widths) > min(old_widths):
        scale = (max(file_widths) - min(file_widths)) / (max(old_widths) - min(old_widths))
    old_prefix = _common_indent(old_lines)
    file_prefix = _common_indent(file_lines)
    out = []
    for line in new_lines:
        if not line.strip():
            out.append("")
            continue
        ind = _indent(line)
        if ind in mapping:
            mapped = mapping[ind]
        else:
            known = [o for o in mapping if ind.startswith(o)]
            base_old = max(known, key=len) if known else old_prefix if ind.startswith(old_prefix) else ""
            base_file = mapping.get(base_old, file_prefix)
            extra = ind[len(base_old) :]
            if extra.strip(" ") == "" and scale != 1.0:
                extra = " " * max(1, round(len(extra) * scale))
            mapped = base_file + extra
        out.append(mapped + line.lstrip())
    return out


def _line_of(text: str, index: int) -> int:
    """0-based line index of character ``index``."""
    return text.count("\n", 0, index)


def _snippet(lines: list[str], start: int, end: int) -> str:
    end = min(end, start + _SNIPPET_LINES)
    return number_lines(lines[start:end], start + 1)


def _candidates_note(lines: list[str], starts: list[tuple[int, int, float | None]]) -> str:
    parts = []
    for start, end, score in starts[:_MAX_CANDIDATES]:
        label = f"lines {start + 1}-{end}" if end - start > 1 else f"line {start + 1}"
        if score is not None:
            label += f" (score {score:.1f})"
        first = lines[start].strip()[:80] if start < len(lines) else ""
        parts.append(f"  {label}: {first}")
    more = len(starts) - _MAX_CANDIDATES
    if more > 0:
        parts.append(f"  ... and {more} more")
    return "\n".join(parts)


def _find_exact(text: str, old: str) -> list[int]:
    hits = []
    at = text.find(old)
    while at >= 0:
        hits.append(at)
        at = text.find(old, at + max(1, len(old)))
    return hits


def _windows(norm_lines: list[str], k: int) -> list[str]:
    return ["\n".join(norm_lines[i : i + k]) for i in range(len(norm_lines) - k + 1)]


def _spread(scored: list[tuple[int, float]], k: int) -> list[tuple[int, float]]:
    """Best-first windows, dropping any that overlap a better one (neighbours of one match)."""
    chosen: list[tuple[int, float]] = []
    starts: list[int] = []
    for idx, score in sorted(scored, key=lambda t: (-t[1], t[0])):
        at = bisect.bisect_left(starts, idx)
        if (at > 0 and idx - starts[at - 1] < k) or (at < len(starts) and starts[at] - idx < k):
            continue
        starts.insert(at, idx)
        chosen.append((idx, score))
    return chosen


def closest_region(lines: list[str], old_lines: list[str]) -> tuple[int, int, float] | None:
    """The window of the file most like `old` (0-based start, end, score), or None if the file is shorter."""
    k = len(old_lines)
    norm = [_norm(line) for line in lines]
    choices = _windows(norm, k)
    if not choices:
        return None
    query = "\n".join(_norm(line) for line in old_lines)
    best = process.extractOne(query, choices, scorer=fuzz.ratio)
    if best is None:
        return None
    _, score, idx = best
    return idx, idx + k, float(score)


def locate(text: str, old: str, *, fuzzy: bool, threshold: float) -> Match:
    """Find the one place `old` matches in `text`, or raise EditNotFound / EditAmbiguous."""
    if not old.strip():
        raise ToolError(
            "the <old> block is empty; copy the exact lines to replace from the file "
            "(to create or replace a whole file use <write>)"
        )
    lines = text.split("\n")

    hits = _find_exact(text, old)
    # Blank lines around `old` are usually tag formatting; line numbers should name the real content.
    lead = len(old) - len(old.lstrip("\n"))
    body_len = len(old.strip("\n")) or len(old)
    if len(hits) == 1:
        at = hits[0]
        start = _line_of(text, at + lead)
        return Match("exact", start, _line_of(text, at + lead + body_len) + 1, span=(at, at + len(old)))
    if len(hits) > 1:
        span_lines = old.strip("\n").count("\n") + 1
        starts = [(s, s + span_lines, None) for s in (_line_of(text, at + lead) for at in hits)]
        raise EditAmbiguous(
            f"<old> occurs {len(hits)} times; add surrounding lines to <old> so it matches only one:\n"
            + _candidates_note(lines, starts)
        )

    old_lines = _trim_blank(old.split("\n"))
    k = len(old_lines)

    if fuzzy:
        squashed = [_squash(line) for line in lines]
        target = [_squash(line) for line in old_lines]
        first = target[0]
        ws_hits = [
            i for i in range(len(lines) - k + 1) if squashed[i] == first and squashed[i : i + k] == target
        ]
        if len(ws_hits) == 1:
            return Match("whitespace", ws_hits[0], ws_hits[0] + k)
        if len(ws_hits) > 1:
            raise EditAmbiguous(
                f"<old> matches {len(ws_hits)} places when whitespace is ignored; "
                "add surrounding lines to <old> so it matches only one:\n"
                + _candidates_note(lines, [(i, i + k, None) for i in ws_hits])
            )

        choices = _windows([_norm(line) for line in lines], k)
        query = "\n".join(_norm(line) for line in old_lines)
        # The cutoff lets rapidfuzz skip most windows on length alone and stop early on the rest.
        scored = process.extract(
            query, choices, scorer=fuzz.ratio, score_cutoff=max(0.0, threshold - AMBIGUITY_MARGIN), limit=None
        )
        if scored:
            top = max(score for _, score, _ in scored)
            near = [(idx, float(score)) for _, score, idx in scored if score >= top - AMBIGUITY_MARGIN]
            spread = _spread(near, k)
            best_idx, best_score = spread[0]
            if best_score >= threshold:
                rivals = spread[1:]
                if rivals:
                    cands = [(i, i + k, s) for i, s in [(best_idx, best_score), *rivals]]
                    raise EditAmbiguous(
                        f"<old> is close to {len(cands)} places (fuzzy match); "
                        "copy the lines exactly and add surrounding lines so it matches only one:\n"
                        + _candidates_note(lines, cands)
                    )
                return Match("fuzzy", best_idx, best_idx + k, score=best_score)

    raise EditNotFound(_not_found_message(lines, old_lines, fuzzy=fuzzy, threshold=threshold))


def _not_found_message(lines: list[str], old_lines: list[str], *, fuzzy: bool, threshold: float) -> str:
    how = (
        f"not exactly, not ignoring whitespace, and no region scores {threshold:.0f} or more"
        if fuzzy
        else "exact match required (whitespace-tolerant and fuzzy matching are off)"
    )
    head = f"<old> was not found in the file ({how})."
    region = closest_region(lines, old_lines)
    if region is None:
        return f"{head} <old> has {len(old_lines)} lines but the file has only {len(lines)}."
    start, end, score = region
    return (
        f"{head}\nThe closest region is lines {start + 1}-{end} (similarity {score:.1f}/100):\n"
        f"{_snippet(lines, start, end)}\n"
        "Copy the lines to replace exactly as the file has them (read the file first if unsure)."
    )


def apply_edit(text: str, old: str, new: str, *, fuzzy: bool, threshold: float) -> EditResult:
    """Replace the one place `old` matches with `new`; raise ToolError when that place is not clear."""
    if old == new:
        raise ToolError("<old> and <new> are identical, so the edit would change nothing")
    match = locate(text, old, fuzzy=fuzzy, threshold=threshold)
    if match.span is not None:
        a, b = match.span
        new_text = text[:a] + new + text[b:]
        body = new.strip("\n")
        if not body.strip():
            first = _line_of(new_text, a) + 1
            return EditResult(new_text, match, first, first - 1)
        at = a + len(new) - len(new.lstrip("\n"))
        return EditResult(new_text, match, _line_of(new_text, at) + 1, _line_of(new_text, at + len(body)) + 1)

    lines = text.split("\n")
    old_lines = _trim_blank(old.split("\n"))
    new_lines = _trim_blank(new.split("\n"))
    block = lines[match.start : match.end]
    replacement = _reindent(new_lines, old_lines, block)
    out = lines[: match.start] + replacement + lines[match.end :]
    return EditResult("\n".join(out), match, match.start + 1, match.start + len(replacement))
