"""The catalog: every family of planted bugs and its surface templates.

Each family plants one kind of bug; its templates are different function shapes and idioms
with the same kind of fix, so that a model can learn the idea rather than one text. The last
template of each family is held out of all training: it measures whether what was learned
carries to a surface never trained on. See template.py for the marks.
"""

from __future__ import annotations

from looper_engine.tasks.world.template import COMMON_POOLS, Rng, Template

LOW = COMMON_POOLS["p"]
HIGH = COMMON_POOLS["q"]


def _sorted_pair(r: Rng) -> tuple[int, int]:
    a, b = r.randint(-3, 9), r.randint(-3, 9)
    return (a, b) if a <= b else (b, a)


def _maybe_sorted(r: Rng) -> tuple[list[int]]:
    xs = r.ints(2, 6)
    return (sorted(xs) if r.random() < 0.5 else xs,)


def _value_and_bounds(r: Rng) -> tuple[int, int, int]:
    lo, hi = _sorted_pair(r)
    return (hi if r.random() < 0.4 else r.randint(-4, 10), lo, hi)


T = Template

RANGE_BOUND = (
    T(
        "range_bound", "sum_first",
        '''
def $fn($xs, $n):
    ⟨"""Sum of the first $n values."""|⟩
    $acc = 0
    for $i in range($n« - 1)|)»:
        ⟨$acc += $xs[$i]|$acc = $acc + $xs[$i]⟩
    return $acc
''',
        lambda r: (xs := r.pos_ints(3, 6), r.randint(1, len(xs))),
        pools={"fn": ("sum_first", "head_total", "prefix_sum", "total_of_first", "sum_head")},
    ),
    T(
        "range_bound", "squares_upto",
        '''
def $fn($n):
    ⟨"""Squares of 1..$n, inclusive."""|⟩
    return [$i * $i for $i in range(1, $n«)]| + 1)]»
''',
        lambda r: (r.randint(1, 7),),
        pools={"fn": ("squares_upto", "square_list", "squares_through", "first_squares")},
    ),
    T(
        "range_bound", "take_slice",
        '''
def $fn($xs, $n):
    ⟨"""The first $n items."""|⟩
    return $xs[:$n« - 1]|]»
''',
        lambda r: (xs := r.ints(2, 6), r.randint(1, len(xs))),
        pools={"fn": ("take", "first_n", "head", "leading", "front")},
    ),
    T(
        "range_bound", "find_while",
        '''
def $fn($xs):
    ⟨"""Index of the first negative value, or -1."""|⟩
    $i = 0
    while $i < len($xs)« - 1:|:»
        if $xs[$i] < 0:
            return $i
        $i += 1
    return -1
''',
        lambda r: (r.ints(1, 6, -2, 9),),
        pools={"fn": ("first_negative", "find_negative", "negative_at", "index_below_zero")},
        edge=(([1, 2, -3],), ([4, -1],)),
    ),
    T(
        "range_bound", "countdown",
        '''
def $fn($n):
    ⟨"""$n, $n - 1, ..., 0."""|⟩
    return [$i for $i in range($n«, 0,|, -1,» -1)]
''',
        lambda r: (r.randint(0, 7),),
        pools={"fn": ("countdown", "down_from", "descending", "count_down")},
    ),
    T(
        "range_bound", "windows",
        '''
def $fn($xs, $n):
    ⟨"""Sums of every run of $n neighbours."""|⟩
    return [sum($xs[$i:$i + $n]) for $i in range(len($xs) - $n«)]| + 1)]»
''',
        lambda r: (xs := r.ints(2, 6), r.randint(1, len(xs))),
        pools={"fn": ("window_sums", "rolling_sums", "run_totals", "sliding_sums")},
    ),
    T(
        "range_bound", "last_n",
        '''
def $fn($xs, $n):
    ⟨"""The last $n items."""|⟩
    return $xs[len($xs) - $n« + 1:|:»]
''',
        lambda r: (xs := r.ints(2, 6), r.randint(1, len(xs))),
        pools={"fn": ("last_n", "tail_n", "newest_n", "final_items")},
    ),
    T(
        "range_bound", "generator_sum",
        '''
def $fn($xs):
    ⟨"""Sum of all the values."""|⟩
    return sum($xs[$i] for $i in range(len($xs)« - 1)|)»)
''',
        lambda r: (r.ints(1, 6),),
        pools={"fn": ("add_all", "grand_total", "sum_values", "total_sum")},
        heldout=True,
    ),
)

COMPARISON = (
    T(
        "comparison", "count_above",
        '''
def $fn($xs, $t):
    ⟨"""How many values exceed $t."""|⟩
    $acc = 0
    for $x in $xs:
        if $x« < | > »$t:
            ⟨$acc += 1|$acc = $acc + 1⟩
    return $acc
''',
        lambda r: (r.ints(2, 6), r.randint(-2, 6)),
        pools={"fn": ("count_above", "num_greater", "above_count", "how_many_over")},
    ),
    T(
        "comparison", "cap",
        '''
def $fn($x, $hi):
    ⟨"""$x, but never more than $hi."""|⟩
    if $x« < | > »$hi:
        return $hi
    return $x
''',
        lambda r: (r.randint(-5, 9), r.randint(0, 6)),
        pools={"fn": ("cap", "clamp_top", "limit_to", "at_most")},
    ),
    T(
        "comparison", "running_max",
        '''
def $fn($xs):
    $acc = $xs[0]
    for $x in $xs[1:]:
        if $x« < | > »$acc:
            $acc = $x
    return $acc
''',
        lambda r: (r.ints(2, 6),),
        pools={"fn": ("largest", "max_value", "biggest", "top_value")},
    ),
    T(
        "comparison", "is_sorted",
        '''
def $fn($xs):
    ⟨"""True when the values never go down."""|⟩
    for $i in range(1, len($xs)):
        if $xs[$i - 1]« < | > »$xs[$i]:
            return False
    return True
''',
        _maybe_sorted,
        pools={"fn": ("is_sorted", "ascending", "in_order", "non_decreasing")},
        edge=(([1, 2, 3],), ([3, 1],)),
    ),
    T(
        "comparison", "at_least",
        '''
def $fn($xs, $t):
    ⟨"""The values that are $t or more."""|⟩
    return [$x for $x in $xs if $x« > | >= »$t]
''',
        lambda r: (xs := r.ints(2, 6), r.choice(xs)),
        pools={"fn": ("at_least", "keep_min", "not_below", "from_threshold")},
    ),
    T(
        "comparison", "within",
        '''
def $fn($x, $lo, $hi):
    ⟨"""True when $lo <= $x <= $hi."""|⟩
    return $lo <= $x« < | <= »$hi
''',
        _value_and_bounds,
        pools={"fn": ("within", "in_bounds", "between", "inside")},
        edge=((3, 1, 3),),
    ),
    T(
        "comparison", "all_positive",
        '''
def $fn($xs):
    ⟨"""True when every value is above zero."""|⟩
    return all($x« >= | > »0 for $x in $xs)
''',
        lambda r: (r.ints(1, 5, 0, 6),),
        pools={"fn": ("all_positive", "every_above_zero", "strictly_positive", "none_below_one")},
        edge=(([0, 2],),),
    ),
    T(
        "comparison", "leading_small",
        '''
def $fn($xs, $t):
    ⟨"""How many leading values are at most $t."""|⟩
    $i = 0
    while $i < len($xs) and $xs[$i]« > | <= »$t:
        $i += 1
    return $i
''',
        lambda r: (r.ints(1, 6), r.randint(0, 6)),
        pools={"fn": ("leading_small", "prefix_at_most", "count_leading", "small_prefix")},
        heldout=True,
    ),
)

ARITH_OP = (
    T(
        "arith_op", "total",
        '''
def $fn($xs):
    $acc = 0
    for $x in $xs:
        $acc« -= | += »$x
    return $acc
''',
        lambda r: (r.ints(1, 6),),
        pools={"fn": ("total", "sum_all", "add_up", "summed")},
        edge=(([2, 3],),),
    ),
    T(
        "arith_op", "perimeter",
        '''
def $fn($w, $h):
    ⟨"""Perimeter of a $w by $h rectangle."""|⟩
    return 2 * ($w« - | + »$h)
''',
        lambda r: (r.randint(1, 9), r.randint(1, 9)),
        pools={"fn": ("perimeter", "rim", "outline_length", "border"), "w": ("w", "width", "a", "x"),
               "h": ("h", "height", "b", "y")},
    ),
    T(
        "arith_op", "product",
        '''
def $fn($xs):
    ⟨"""Product of all the values."""|⟩
    $acc = 1
    for $x in $xs:
        $acc« += | *= »$x
    return $acc
''',
        lambda r: (r.ints(1, 5, -3, 6),),
        pools={"fn": ("product", "multiply_all", "prod", "times_all")},
        edge=(([3, 4],),),
    ),
    T(
        "arith_op", "midpoint",
        '''
def $fn($lo, $hi):
    ⟨"""The integer midpoint of $lo and $hi."""|⟩
    return ($lo + $hi)« % | // »2
''',
        lambda r: _sorted_pair(r),
        pools={"fn": ("midpoint", "middle", "center", "halfway")},
        edge=((2, 8),),
    ),
    T(
        "arith_op", "scale",
        '''
def $fn($xs, $n):
    ⟨"""Every value multiplied by $n."""|⟩
    return [$x« + | * »$n for $x in $xs]
''',
        lambda r: (r.ints(1, 5), r.randint(3, 5)),
        pools={"fn": ("scale", "times", "multiply_each", "scaled")},
    ),
    T(
        "arith_op", "change",
        '''
def $fn($xs):
    ⟨"""Last value minus the first."""|⟩
    return $xs[-1]« + | - »$xs[0]
''',
        lambda r: (r.ints(2, 6, 1, 9),),
        pools={"fn": ("change", "growth", "net_change", "span_of")},
    ),
    T(
        "arith_op", "is_even",
        '''
def $fn($n):
    ⟨"""True when $n is even."""|⟩
    return $n« // | % »2 == 0
''',
        lambda r: (r.randint(0, 20),),
        pools={"fn": ("is_even", "even", "divisible_by_two", "has_no_half")},
        edge=((5,), (2,)),
    ),
    T(
        "arith_op", "floor_mean",
        '''
def $fn($xs):
    ⟨"""The mean, rounded down."""|⟩
    return sum($xs)« * | // »len($xs)
''',
        lambda r: (r.ints(2, 5, 1, 9),),
        pools={"fn": ("floor_mean", "mean_down", "average_int", "int_mean")},
        heldout=True,
    ),
)

WRONG_VAR = (
    T(
        "wrong_var", "value_range",
        '''
def $fn($xs):
    ⟨"""Largest value minus smallest."""|⟩
    $p = min($xs)
    $q = max($xs)
    return $q« - $q| - $p»
''',
        lambda r: (r.ints(2, 6),),
        pools={"fn": ("value_range", "spread", "extent", "width_of"), "p": LOW, "q": HIGH},
        span_marks=("p", "q"),
        edge=(([1, 5],),),
    ),
    T(
        "wrong_var", "smaller",
        '''
def $fn($p, $q):
    ⟨"""The smaller of two values."""|⟩
    if $p > $q:
        $p, $q = $q, $p
    «return $q|return $p»
''',
        lambda r: (r.randint(-5, 9), r.randint(-5, 9)),
        pools={"fn": ("smaller", "min_of_two", "lesser", "least_of")},
        span_marks=("p", "q"),
        edge=((1, 2),),
    ),
    T(
        "wrong_var", "has_duplicate",
        '''
def $fn($xs):
    for $p in range(len($xs)):
        for $q in range($p + 1, len($xs)):
            if $xs[$p] == $xs«[$p]:|[$q]:»
                return True
    return False
''',
        lambda r: (r.ints(2, 5, 0, 5),),
        pools={"fn": ("has_duplicate", "any_repeat", "has_twins", "repeats"), "p": ("i", "a", "first", "left"),
               "q": ("j", "b", "second", "right")},
        span_marks=("p", "q"),
        edge=(([1, 2],),),
    ),
    T(
        "wrong_var", "bigger",
        '''
def $fn($p, $q):
    ⟨"""The larger of two values."""|⟩
    return «$q if|$p if» $p > $q else $q
''',
        lambda r: (r.randint(-5, 9), r.randint(-5, 9)),
        pools={"fn": ("bigger", "max_of_two", "greater", "larger")},
        span_marks=("p", "q"),
        edge=((3, 1),),
    ),
    T(
        "wrong_var", "distance",
        '''
def $fn($p, $q):
    ⟨"""How far apart two values are."""|⟩
    if $p < $q:
        return $q - $p
    return «$p - $p|$p - $q»
''',
        lambda r: (r.randint(-5, 9), r.randint(-5, 9)),
        pools={"fn": ("distance", "gap", "apart", "abs_diff")},
        span_marks=("p", "q"),
        edge=((5, 2),),
    ),
    T(
        "wrong_var", "ends",
        '''
def $fn($xs):
    ⟨"""The first and the last value."""|⟩
    $p = $xs[0]
    $q = $xs[-1]
    return ($p, «$p)|$q)»
''',
        lambda r: (r.ints(2, 6),),
        pools={"fn": ("ends", "first_and_last", "bookends", "outer_pair"), "p": LOW, "q": HIGH},
        span_marks=("p", "q"),
        edge=(([1, 2],),),
    ),
    T(
        "wrong_var", "clamp",
        '''
def $fn($x, $p, $q):
    ⟨"""$x kept within $p..$q."""|⟩
    return max($p, min($x, «$p)|$q)»)
''',
        _value_and_bounds,
        pools={"fn": ("clamp", "bounded", "keep_within", "fit_range")},
        span_marks=("p", "q"),
        edge=((5, 1, 3),),
    ),
    T(
        "wrong_var", "position",
        '''
def $fn($xs, $t):
    ⟨"""Index of $t, or -1."""|⟩
    for $p, $q in enumerate($xs):
        if $q == $t:
            «return $q|return $p»
    return -1
''',
        lambda r: (xs := r.ints(2, 6, 0, 9), r.choice(xs)),
        pools={"fn": ("position", "index_of", "where", "locate"), "p": ("i", "pos", "at", "idx"),
               "q": ("x", "v", "item", "value")},
        span_marks=("p", "q"),
        edge=(([7, 8], 8),),
        heldout=True,
    ),
)

NEGATION = (
    T(
        "negation", "unique",
        '''
def $fn($xs):
    ⟨"""The values without repeats, in first-seen order."""|⟩
    $out = []
    for $x in $xs:
        «if |if not »$x in $out:
            ⟨$out.append($x)|$out += [$x]⟩
    return $out
''',
        lambda r: (r.ints(2, 6, 0, 4),),
        pools={"fn": ("unique", "dedupe", "distinct", "without_repeats")},
    ),
    T(
        "negation", "missing",
        '''
def $fn($xs, $d):
    ⟨"""The values that are not keys of $d."""|⟩
    return [$x for $x in $xs «if |if not »$x in $d]
''',
        lambda r: (r.ints(2, 5, 0, 6), {k: r.randint(0, 3) for k in r.ints(1, 4, 0, 6)}),
        pools={"fn": ("missing", "unknown_keys", "not_indexed", "absent")},
    ),
    T(
        "negation", "has_items",
        '''
def $fn($xs):
    ⟨"""True when there is at least one value."""|⟩
    «return |return not »len($xs) == 0
''',
        lambda r: (r.ints(0, 3),),
        pools={"fn": ("has_items", "non_empty", "any_left", "is_filled")},
    ),
    T(
        "negation", "first_multiple",
        '''
def $fn($xs, $n):
    ⟨"""The first value divisible by $n, or None."""|⟩
    for $x in $xs:
        «if |if not »$x % $n:
            return $x
    return None
''',
        lambda r: (r.pos_ints(2, 6), r.randint(2, 4)),
        pools={"fn": ("first_multiple", "divisible", "first_divisible", "multiple_of")},
        edge=(([3, 4], 2),),
    ),
    T(
        "negation", "no_digits",
        '''
def $fn($s):
    ⟨"""True when $s holds no digit."""|⟩
    «return |return not »any($x.isdigit() for $x in $s)
''',
        lambda r: (r.word(1, 5, "abc12"),),
        pools={"fn": ("no_digits", "all_letters", "digit_free", "is_alpha_only")},
        edge=(("ab",), ("a1",)),
    ),
    T(
        "negation", "drop_falsy",
        '''
def $fn($xs):
    $out = []
    for $x in $xs:
        «if |if not »$x:
            continue
        ⟨$out.append($x)|$out += [$x]⟩
    return $out
''',
        lambda r: (r.ints(2, 6, 0, 3),),
        pools={"fn": ("drop_falsy", "non_zero", "compact", "truthy_only")},
        edge=(([0, 1],),),
    ),
    T(
        "negation", "drop_comments",
        '''
def $fn($xs):
    ⟨"""The lines that are not comments."""|⟩
    return [$s for $s in $xs «if |if not »$s.startswith("#")]
''',
        lambda r: ([r.choice(["#", ""]) + r.word(1, 4) for _ in range(r.randint(1, 5))],),
        pools={"fn": ("drop_comments", "code_lines", "strip_comments", "no_comments")},
        edge=((["#a", "b"],),),
    ),
    T(
        "negation", "first_truthy",
        '''
def $fn($xs):
    ⟨"""Index of the first non-zero value."""|⟩
    $i = 0
    while $i < len($xs) «and |and not »$xs[$i]:
        $i += 1
    return $i
''',
        lambda r: (r.ints(1, 5, 0, 2),),
        pools={"fn": ("first_truthy", "first_nonzero", "skip_zeros", "leading_zeros")},
        edge=(([0, 0, 1],), ([1, 0],)),
        heldout=True,
    ),
)

DEFAULT_CONST = (
    T(
        "default_const", "skip_default",
        '''
def $fn($xs, $n«=1)|=0)»:
    ⟨"""The values from index $n on (all by default)."""|⟩
    return $xs[$n:]
''',
        lambda r: (r.ints(1, 5),),
        pools={"fn": ("rest_from", "drop", "skip", "tail_from")},
    ),
    T(
        "default_const", "join_default",
        '''
def $fn($xs, $s«="-")|=",")»:
    ⟨"""The words joined, by commas unless told otherwise."""|⟩
    return $s.join($xs)
''',
        lambda r: (r.words(2, 4),),
        pools={"fn": ("join_words", "glue", "joined", "as_line"), "s": ("sep", "joiner", "delim", "between")},
    ),
    T(
        "default_const", "not_found",
        '''
def $fn($xs, $t):
    ⟨"""Index of $t, or -1 when it is absent."""|⟩
    for $i in range(len($xs)):
        if $xs[$i] == $t:
            return $i
    «return 0|return -1»
''',
        lambda r: (r.ints(1, 5, 0, 6), r.randint(0, 8)),
        pools={"fn": ("find", "index_or_minus", "search", "lookup_index")},
        edge=(([1, 2], 5),),
    ),
    T(
        "default_const", "parse_base",
        '''
def $fn($s):
    ⟨"""The decimal number written in $s."""|⟩
    return int($s, «8)|10)»
''',
        lambda r: (str(r.randint(10, 77)),),
        pools={"fn": ("parse", "to_number", "read_int", "as_int")},
    ),
    T(
        "default_const", "evens",
        '''
def $fn($n):
    ⟨"""The even numbers below $n."""|⟩
    return list(range(0, $n«, 1)|, 2)»)
''',
        lambda r: (r.randint(2, 9),),
        pools={"fn": ("evens", "even_below", "even_numbers", "every_other")},
    ),
    T(
        "default_const", "squares",
        '''
def $fn($xs):
    ⟨"""Each value squared."""|⟩
    return [$x «** 3|** 2» for $x in $xs]
''',
        lambda r: (r.ints(1, 5),),
        pools={"fn": ("squares", "squared", "each_square", "sq_all")},
        edge=(([2],),),
    ),
    T(
        "default_const", "repeat_default",
        '''
def $fn($s, $n«=1)|=2)»:
    ⟨"""$s repeated $n times (twice by default)."""|⟩
    return $s * $n
''',
        lambda r: (r.word(1, 4),),
        pools={"fn": ("repeat", "doubled", "echo", "twice")},
    ),
    T(
        "default_const", "prefix_default",
        '''
def $fn($s, $n«=1)|=3)»:
    ⟨"""The first $n letters of $s (three by default)."""|⟩
    return $s[:$n]
''',
        lambda r: (r.word(4, 7),),
        pools={"fn": ("prefix", "short_form", "abbrev", "initial_part")},
        heldout=True,
    ),
)

SWAPPED_ARGS = (
    T(
        "swapped_args", "span_list",
        '''
def $fn($p, $q):
    ⟨"""The integers from $p up to, not including, $q."""|⟩
    return list(range«($q, $p)|($p, $q)»)
''',
        lambda r: _sorted_pair(r),
        pools={"fn": ("span_list", "numbers_between", "ints_from", "run_of")},
        span_marks=("p", "q"),
        edge=((1, 3),),
    ),
    T(
        "swapped_args", "power",
        '''
def $fn($p, $q):
    ⟨"""$p raised to the power $q."""|⟩
    return pow«($q, $p)|($p, $q)»
''',
        lambda r: (r.randint(2, 4), r.randint(0, 4)),
        pools={"fn": ("power", "raise_to", "exponent", "pow_of"), "p": ("base", "b", "x", "num"),
               "q": ("exp", "e", "k", "times")},
        span_marks=("p", "q"),
        edge=((2, 3),),
    ),
    T(
        "swapped_args", "ratio_helper",
        '''
def _ratio($p, $q):
    return $p // $q


def $fn($p, $q):
    ⟨"""How many times $q fits into $p."""|⟩
    return _ratio«($q, $p)|($p, $q)»
''',
        lambda r: (r.randint(4, 20), r.randint(1, 4)),
        pools={"fn": ("fits", "times_into", "how_many", "quotient"), "p": ("total", "a", "whole", "num"),
               "q": ("part", "b", "unit", "den")},
        span_marks=("p", "q"),
    ),
    T(
        "swapped_args", "insert_at",
        '''
def $fn($xs, $p, $q):
    ⟨"""A copy of $xs with $q inserted at index $p."""|⟩
    $out = list($xs)
    $out.insert«($q, $p)|($p, $q)»
    return $out
''',
        lambda r: (xs := r.ints(1, 4), r.randint(0, len(xs)), r.randint(10, 20)),
        pools={"fn": ("insert_at", "with_item", "put", "placed"), "p": ("i", "pos", "at", "where"),
               "q": ("x", "v", "item", "value")},
        span_marks=("p", "q"),
    ),
    T(
        "swapped_args", "gaps",
        '''
def _gap($p, $q):
    return $q - $p


def $fn($xs):
    ⟨"""Differences between neighbours."""|⟩
    return [_gap«($q, $p)|($p, $q)» for $p, $q in zip($xs, $xs[1:])]
''',
        lambda r: (r.ints(2, 5),),
        pools={"fn": ("gaps", "steps", "deltas", "differences"), "p": LOW, "q": HIGH},
        span_marks=("p", "q"),
        edge=(([1, 3],),),
    ),
    T(
        "swapped_args", "starts_with",
        '''
def $fn($p, $q):
    ⟨"""True when $p begins with $q."""|⟩
    return «$q.startswith($p)|$p.startswith($q)»
''',
        lambda r: ((w := r.word(2, 6)), w[: r.randint(1, len(w))] if r.random() < 0.7 else r.word(1, 3)),
        pools={"fn": ("starts_with", "has_prefix", "begins", "opens_with"), "p": ("text", "s", "word", "line"),
               "q": ("prefix", "head", "stem", "lead")},
        span_marks=("p", "q"),
    ),
    T(
        "swapped_args", "quotient",
        '''
def $fn($p, $q):
    ⟨"""The quotient and remainder of $p by $q."""|⟩
    return divmod«($q, $p)|($p, $q)»
''',
        lambda r: (r.randint(5, 30), r.randint(2, 4)),
        pools={"fn": ("quotient", "div_rem", "split_by", "share_out"), "p": ("total", "a", "whole", "num"),
               "q": ("part", "b", "unit", "den")},
        span_marks=("p", "q"),
    ),
    T(
        "swapped_args", "replace_letter",
        '''
def $fn($s, $p, $q):
    ⟨"""$s with every $p replaced by $q."""|⟩
    return $s.replace«($q, $p)|($p, $q)»
''',
        lambda r: (w := r.word(3, 6, "abc"), r.choice(w), r.choice("xyz")),
        pools={"fn": ("replace_letter", "swap_char", "substitute", "rewrite"), "p": ("old", "src", "a", "before"),
               "q": ("new", "dst", "b", "after")},
        span_marks=("p", "q"),
        heldout=True,
    ),
)

ACC_INIT = (
    T(
        "acc_init", "sum_init",
        '''
def $fn($xs):
    ⟨"""Sum of the values."""|⟩
    $acc« = 1| = 0»
    for $x in $xs:
        ⟨$acc += $x|$acc = $acc + $x⟩
    return $acc
''',
        lambda r: (r.ints(0, 5),),
        pools={"fn": ("sum_of", "add_values", "accumulate", "summation")},
    ),
    T(
        "acc_init", "product_init",
        '''
def $fn($xs):
    ⟨"""Product of the values (1 for none)."""|⟩
    $acc« = 0| = 1»
    for $x in $xs:
        $acc *= $x
    return $acc
''',
        lambda r: (r.ints(0, 4, 1, 6),),
        pools={"fn": ("product_of", "multiplied", "prod_all", "times_together")},
    ),
    T(
        "acc_init", "count_init",
        '''
def $fn($xs, $t):
    ⟨"""How many times $t occurs."""|⟩
    $acc« = 1| = 0»
    for $x in $xs:
        if $x == $t:
            $acc += 1
    return $acc
''',
        lambda r: (r.ints(1, 6, 0, 4), r.randint(0, 4)),
        pools={"fn": ("occurrences", "count_of", "how_often", "frequency")},
    ),
    T(
        "acc_init", "max_init",
        '''
def $fn($xs):
    $acc« = 0| = float("-inf")»
    for $x in $xs:
        if $x > $acc:
            $acc = $x
    return $acc
''',
        lambda r: (r.ints(1, 5, -9, 3),),
        pools={"fn": ("maximum", "peak", "highest", "max_of")},
        edge=(([-3, -1],),),
    ),
    T(
        "acc_init", "list_init",
        '''
def $fn($xs):
    ⟨"""The positive values."""|⟩
    $out« = [0]| = []»
    for $x in $xs:
        if $x > 0:
            ⟨$out.append($x)|$out += [$x]⟩
    return $out
''',
        lambda r: (r.ints(0, 5),),
        pools={"fn": ("positives", "keep_positive", "above_zero", "plus_only")},
    ),
    T(
        "acc_init", "initials",
        '''
def $fn($xs):
    ⟨"""The first letter of every word."""|⟩
    $acc« = " "| = ""»
    for $s in $xs:
        $acc += $s[0]
    return $acc
''',
        lambda r: (r.words(1, 4),),
        pools={"fn": ("initials", "acronym", "first_letters", "heads")},
    ),
    T(
        "acc_init", "char_counts",
        '''
def $fn($s):
    ⟨"""How often each letter occurs."""|⟩
    $d« = {"": 0}| = {}»
    for $x in $s:
        $d[$x] = $d.get($x, 0) + 1
    return $d
''',
        lambda r: (r.word(1, 5, "abc"),),
        pools={"fn": ("char_counts", "letter_counts", "histogram", "tally_letters")},
    ),
    T(
        "acc_init", "min_init",
        '''
def $fn($xs):
    ⟨"""The smallest value, or None for no values."""|⟩
    $acc« = 0| = None»
    for $x in $xs:
        if $acc is None or $x < $acc:
            $acc = $x
    return $acc
''',
        lambda r: (r.pos_ints(0, 5),),
        pools={"fn": ("minimum", "lowest", "smallest", "min_or_none")},
        heldout=True,
    ),
)

BOOL_OP = (
    T(
        "bool_op", "both_positive",
        '''
def $fn($p, $q):
    ⟨"""True when both values are above zero."""|⟩
    return $p > 0« or | and »$q > 0
''',
        lambda r: (r.randint(-4, 6), r.randint(-4, 6)),
        pools={"fn": ("both_positive", "all_above_zero", "pair_positive", "both_up")},
        edge=((3, -1),),
    ),
    T(
        "bool_op", "outside",
        '''
def $fn($x, $lo, $hi):
    ⟨"""True when $x lies outside $lo..$hi."""|⟩
    return $x < $lo« and | or »$x > $hi
''',
        _value_and_bounds,
        pools={"fn": ("outside", "out_of_range", "beyond", "not_within")},
        edge=((9, 1, 3),),
    ),
    T(
        "bool_op", "positive_evens",
        '''
def $fn($xs):
    ⟨"""The values that are even and above zero."""|⟩
    return [$x for $x in $xs if $x > 0« or | and »$x % 2 == 0]
''',
        lambda r: (r.ints(2, 6, -4, 7),),
        pools={"fn": ("positive_evens", "even_and_up", "good_evens", "plus_evens")},
        edge=(([1, 2],),),
    ),
    T(
        "bool_op", "scan_until",
        '''
def $fn($xs, $t):
    ⟨"""Index of $t (len($xs) when it is absent)."""|⟩
    $i = 0
    while $i < len($xs)« or | and »$xs[$i] != $t:
        $i += 1
    return $i
''',
        lambda r: (xs := r.ints(1, 5, 0, 6), r.choice(xs) if r.random() < 0.6 else r.randint(0, 8)),
        pools={"fn": ("scan_until", "seek", "find_or_end", "advance_to")},
        edge=(([1, 2], 5),),
    ),
    T(
        "bool_op", "starts_with_char",
        '''
def $fn($s, $t):
    ⟨"""True when $s is not empty and begins with $t."""|⟩
    return len($s) > 0« or | and »$s[0] == $t
''',
        lambda r: (r.word(0, 4, "abc"), r.choice("abc")),
        pools={"fn": ("starts_with_char", "leads_with", "opens_on", "first_is"), "t": ("c", "ch", "letter", "char")},
        edge=(("", "a"), ("b", "a")),
    ),
    T(
        "bool_op", "either_zero",
        '''
def $fn($p, $q):
    ⟨"""True when one of the two values is zero."""|⟩
    return $p == 0« and | or »$q == 0
''',
        lambda r: (r.randint(-2, 3), r.randint(-2, 3)),
        pools={"fn": ("either_zero", "any_zero", "has_zero", "zero_in_pair")},
        edge=((0, 4),),
    ),
    T(
        "bool_op", "both_given",
        '''
def $fn($p, $q):
    ⟨"""True when neither value is None."""|⟩
    return $p is not None« or | and »$q is not None
''',
        lambda r: (r.choice([None, r.randint(0, 5)]), r.choice([None, r.randint(0, 5)])),
        pools={"fn": ("both_given", "both_set", "complete_pair", "have_both")},
        edge=((1, None),),
    ),
    T(
        "bool_op", "count_either",
        '''
def $fn($xs, $t):
    ⟨"""How many values pass either test."""|⟩
    return sum(1 for $x in $xs if $x % 2 == 0« and | or »$x > $t)
''',
        lambda r: (r.ints(1, 6, 0, 9), r.randint(2, 6)),
        pools={"fn": ("count_either", "even_or_big", "tally_either", "how_many_either")},
        edge=(([2, 9], 5),),
        heldout=True,
    ),
)

INDEX_PICK = (
    T(
        "index_pick", "last_item",
        '''
def $fn($xs):
    ⟨"""The last value."""|⟩
    return $xs«[0]|[-1]»
''',
        lambda r: (r.ints(2, 6),),
        pools={"fn": ("last_item", "final", "newest", "tail_value")},
        edge=(([1, 2],),),
    ),
    T(
        "index_pick", "second_largest",
        '''
def $fn($xs):
    ⟨"""The second largest value."""|⟩
    return sorted($xs)«[1]|[-2]»
''',
        lambda r: (r.ints(3, 6),),
        pools={"fn": ("second_largest", "runner_up", "next_best", "silver")},
        edge=(([1, 2, 3, 4],),),
    ),
    T(
        "index_pick", "rest",
        '''
def $fn($xs):
    ⟨"""Every value but the first."""|⟩
    return $xs«[0:]|[1:]»
''',
        lambda r: (r.ints(1, 5),),
        pools={"fn": ("rest", "tail", "all_but_first", "after_head")},
    ),
    T(
        "index_pick", "capitalize",
        '''
def $fn($s):
    ⟨"""$s with its first letter in upper case."""|⟩
    return $s«[1]|[0]».upper() + $s[1:]
''',
        lambda r: (r.word(2, 6),),
        pools={"fn": ("capitalize", "title_first", "upper_first", "cap_word")},
    ),
    T(
        "index_pick", "firsts",
        '''
def $fn($xs):
    ⟨"""The first element of every pair."""|⟩
    return [$x«[1]|[0]» for $x in $xs]
''',
        lambda r: ([[r.randint(0, 9), r.randint(0, 9)] for _ in range(r.randint(1, 4))],),
        pools={"fn": ("firsts", "left_items", "keys_of_pairs", "heads_of")},
        edge=(([[1, 2]],),),
    ),
    T(
        "index_pick", "drop_last",
        '''
def $fn($xs):
    ⟨"""Every value but the last."""|⟩
    return $xs«[1:]|[:-1]»
''',
        lambda r: (r.ints(1, 5),),
        pools={"fn": ("drop_last", "all_but_last", "init", "without_last")},
    ),
    T(
        "index_pick", "second_item",
        '''
def $fn($xs):
    ⟨"""The second value."""|⟩
    return $xs«[2]|[1]»
''',
        lambda r: (r.ints(3, 6),),
        pools={"fn": ("second_item", "runner", "next_after_first", "item_two")},
    ),
    T(
        "index_pick", "first_word",
        '''
def $fn($s):
    ⟨"""The first word of $s."""|⟩
    return $s.split()«[-1]|[0]»
''',
        lambda r: (" ".join(r.words(2, 4)),),
        pools={"fn": ("first_word", "opening_word", "lead_word", "head_word")},
        heldout=True,
    ),
)

FAMILIES: dict[str, tuple[Template, ...]] = {
    "range_bound": RANGE_BOUND,
    "comparison": COMPARISON,
    "arith_op": ARITH_OP,
    "wrong_var": WRONG_VAR,
    "negation": NEGATION,
    "default_const": DEFAULT_CONST,
    "swapped_args": SWAPPED_ARGS,
    "acc_init": ACC_INIT,
    "bool_op": BOOL_OP,
    "index_pick": INDEX_PICK,
}

#: What each family plants, for listings and reports.
DESCRIPTIONS: dict[str, str] = {
    "range_bound": "off-by-one in a range or slice bound",
    "comparison": "wrong comparison operator",
    "arith_op": "wrong arithmetic operator",
    "wrong_var": "wrong variable",
    "negation": "missing negation",
    "default_const": "wrong constant or default",
    "swapped_args": "swapped arguments",
    "acc_init": "wrong accumulator initial value",
    "bool_op": "and where or is meant, or the reverse",
    "index_pick": "wrong index or slice start",
}
