"""Which families a base model is pretrained on, and which are kept for later learning.

The base families are the four whose gold spans are short operator or bound changes
(` - 1)` -> `)`, ` < ` -> ` >= `, ` + ` -> ` * `, `if ` -> `if not `): a ~1M-parameter
model trained from random weights learns them in minutes, so the base model starts with
real skill. The stream families are never in its training data: experiments teach them one
chunk at a time and measure forward learning and forgetting on the base ones. They are
ordered from the most learnable (again operator-sized spans) to the hardest (wrong_var and
swapped_args need identifiers copied from the file, which tiny models learn slowly).
"""

from __future__ import annotations

#: Families `looper model pretrain` trains the mini-lab base model on.
BASE_FAMILIES: tuple[str, ...] = ("range_bound", "comparison", "arith_op", "negation")

#: Families held back from the base model, in the order experiment streams teach them.
STREAM_FAMILIES: tuple[str, ...] = (
    "bool_op",
    "index_pick",
    "acc_init",
    "default_const",
    "wrong_var",
    "swapped_args",
)

