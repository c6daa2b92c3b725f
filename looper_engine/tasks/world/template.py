"""Surface templates of the task world and how one is rendered into a buggy and a fixed file.

A template's source is Python with three kinds of marks:

- `$name` — an identifier (or constant) drawn per instance from the template's pools;
- `⟨a|b|c⟩` — a layout choice: one of the alternatives, drawn per instance;
- `«buggy|fixed»` — the planted bug, exactly once: the buggy file has `buggy` there, the fixed
  file has `fixed`. That pair is the gold patch, so it is written as the minimal span a fix
  needs (` - 1)` -> `)`, ` < ` -> ` >= `), never with an identifier the model would have to copy.

A line that renders empty or as whitespace only (an absent docstring) is dropped. Some files
open with a module docstring (MODULE_DOCS), some hold an unrelated neighbour before or after
the function (NEIGHBOURS): layout noise that changes no behaviour.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

#: Identifier pools every template can use; a template adds or overrides its own.
COMMON_POOLS: dict[str, tuple[str, ...]] = {
    "xs": ("xs", "items", "values", "nums", "data", "vals", "seq", "arr", "elems", "entries", "numbers", "scores"),
    "ys": ("ys", "others", "rhs", "second", "more", "extra"),
    "x": ("x", "v", "item", "value", "elem", "e", "num", "val"),
    "i": ("i", "j", "k", "idx", "pos"),
    "n": ("n", "count", "size", "limit", "m", "width"),
    "acc": ("total", "acc", "result", "tally", "running", "agg"),
    "out": ("out", "result", "res", "kept", "picked", "chosen"),
    "s": ("s", "text", "word", "line", "name", "label"),
    "key": ("key", "k", "name", "tag", "field"),
    "d": ("d", "table", "mapping", "counts", "index", "lookup"),
    "t": ("t", "target", "goal", "wanted", "needle", "query"),
    "lo": ("lo", "low", "floor", "least"),
    "hi": ("hi", "high", "ceil", "most"),
    # The smaller and the larger of a pair: bugs about names fix them, so the vocabulary is short.
    "p": ("lo", "low", "a", "first", "left", "start"),
    "q": ("hi", "high", "b", "last", "right", "end"),
    # One module name: the path is the one identifier every turn repeats (read, edit), and a
    # small model does not learn in minutes to copy a name from the statement (trained on
    # eight names, the mini-lab model read the commonest one whatever the task said, and
    # solved little else). The file's own identifiers stay random: no fix copies them.
    "mod": ("lib",),
}

#: Module docstrings a file may open with (layout noise that changes no behaviour).
MODULE_DOCS: tuple[str, ...] = (
    '"""Small helpers."""',
    '"""Helpers for lists of numbers."""',
    '"""Utility functions."""',
    '"""Shared helpers used by the app."""',
    '"""Little functions with tests."""',
)
#: How often a file opens with one.
MODULE_DOC_SHARE = 0.3
#: Unrelated neighbours a file may hold before or after the function ("$fn" is its name).
NEIGHBOURS: tuple[str, ...] = (
    '__all__ = ["$fn"]',
    "DEBUG = False",
    "MAX_ITEMS = 50",
    'VERSION = "2.3"',
    "def _identity(v):\n    return v",
    "def _is_blank(text):\n    return text.strip() == \"\"",
    "def _pair(a, b):\n    return (a, b)",
)
#: How often a file holds one.
NEIGHBOUR_SHARE = 0.3

_MARK = re.compile(r"\$([A-Za-z_]\w*)")
_CHOICE = re.compile(r"⟨([^⟨⟩]*)⟩")
_BUG = re.compile(r"«([^«»|]*)\|([^«»]*)»")

Args = tuple[object, ...]


class Rng(random.Random):
    """random.Random with the draws templates use for test inputs."""

    def ints(self, nmin: int = 2, nmax: int = 6, lo: int = -5, hi: int = 9) -> list[int]:
        return [self.randint(lo, hi) for _ in range(self.randint(nmin, nmax))]

    def pos_ints(self, nmin: int = 2, nmax: int = 6, hi: int = 9) -> list[int]:
        return self.ints(nmin, nmax, 1, hi)

    def word(self, nmin: int = 2, nmax: int = 6, letters: str = "abcdefgh") -> str:
        return "".join(self.choice(letters) for _ in range(self.randint(nmin, nmax)))

    def words(self, nmin: int = 2, nmax: int = 5) -> list[str]:
        return [self.word(1, 5) for _ in range(self.randint(nmin, nmax))]


@dataclass(frozen=True)
class Template:
    """One surface form of one bug family."""

    family: str
    name: str
    source: str
    #: Draws one tuple of arguments for the function under test.
    args: Callable[[Rng], Args]
    #: Pools for the function name and any template-specific marks.
    pools: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Arguments always among the candidates (edge cases that show the bug).
    edge: tuple[Args, ...] = ()
    #: Kept out of all training: only evaluated, to measure transfer to an unseen surface.
    heldout: bool = False
    #: Marks whose values may appear in the gold span (a family about names needs them).
    span_marks: tuple[str, ...] = ()
    #: The function the tests call (a mark, usually "fn").
    entry: str = "fn"

    @property
    def key(self) -> str:
        return f"{self.family}/{self.name}"


@dataclass(frozen=True)
class Rendered:
    buggy: str
    fixed: str
    old: str
    new: str
    names: dict[str, str]


def _pool(template: Template, mark: str) -> tuple[str, ...]:
    if mark in template.pools:
        return template.pools[mark]
    if mark in COMMON_POOLS:
        return COMMON_POOLS[mark]
    raise KeyError(f"{template.key}: no pool for ${mark}")


def draw_names(template: Template, rng: random.Random) -> dict[str, str]:
    """One value per mark of the source (and the module name), all different from each other.

    `$p` and `$q` are drawn as a matched pair (lo/hi, first/last, i/j: the same position of
    their pools), so the name a fix needs follows from the name it replaces.
    """
    marks = ["mod", *dict.fromkeys(_MARK.findall(template.source))]
    names: dict[str, str] = {}
    used: set[str] = set()
    if "p" in marks and "q" in marks:
        lows, highs = _pool(template, "p"), _pool(template, "q")
        if len(lows) != len(highs):
            raise ValueError(f"{template.key}: the pools of $p and $q must pair up")
        position = rng.randrange(len(lows))
        names["p"], names["q"] = lows[position], highs[position]
        used |= {names["p"], names["q"]}
    for mark in marks:
        if mark in names:
            continue
        options = [v for v in _pool(template, mark) if v not in used]
        if not options:
            raise ValueError(f"{template.key}: pool of ${mark} exhausted by the other marks")
        value = rng.choice(options)
        names[mark] = value
        used.add(value)
    return names


def render(template: Template, rng: random.Random) -> Rendered:
    """Draw names and layout and render the buggy and the fixed file."""
    names = draw_names(template, rng)
    source = template.source.strip("\n")
    if rng.random() < NEIGHBOUR_SHARE:
        neighbour = rng.choice(NEIGHBOURS)
        source = f"{neighbour}\n\n\n{source}" if rng.random() < 0.5 else f"{source}\n\n\n{neighbour}"
    if rng.random() < MODULE_DOC_SHARE:
        source = rng.choice(MODULE_DOCS) + "\n\n" + source
    text = _MARK.sub(lambda m: names[m.group(1)], source)
    text = _CHOICE.sub(lambda m: rng.choice(m.group(1).split("|")), text)
    bugs = _BUG.findall(text)
    if len(bugs) != 1:
        raise ValueError(f"{template.key}: the source needs exactly one «buggy|fixed» mark, found {len(bugs)}")
    old, new = bugs[0]

    def finish(side: int) -> str:
        body = _BUG.sub(lambda m: m.group(side), text)
        lines = body.strip("\n").split("\n")
        return "\n".join(line.rstrip() for line in lines if line.strip() or line == "") + "\n"

    return Rendered(buggy=finish(1), fixed=finish(2), old=old, new=new, names=names)
