"""Word statistics for tuning the search index's stop words."""

import re

WORD = re.compile(r"[a-z']+")


def word_counts(text: str) -> dict[str, int]:
    """How often each word occurs, case-insensitively."""
    counts: dict[str, int] = {}
    for word in WORD.findall(text.lower()):
        counts[word] += 1
    return counts


def top_words(text: str, n: int = 3) -> list[tuple[str, int]]:
    """The n most frequent words; ties are broken alphabetically."""
    counts = word_counts(text)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]
