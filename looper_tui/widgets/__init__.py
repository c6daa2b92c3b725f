"""One widget per module, each with its `.tcss` beside it."""
