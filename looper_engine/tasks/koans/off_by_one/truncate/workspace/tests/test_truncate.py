from textfit import fit_columns, truncate


def test_short_text_is_unchanged():
    assert truncate("hello", 8) == "hello"
    assert truncate("12345678", 8) == "12345678"


def test_long_text_fits_width():
    assert truncate("hello world", 8) == "hello w…"


def test_custom_ellipsis():
    assert truncate("hello world", 8, "...") == "hello..."


def test_never_longer_than_width():
    text = "the quick brown fox jumps over the lazy dog"
    for width in range(1, len(text) + 2):
        assert len(truncate(text, width)) <= width


def test_columns_stay_aligned():
    first = fit_columns(["a very long name", "x"], [6, 3])
    second = fit_columns(["short", "y"], [6, 3])
    assert first.index("x") == second.index("y")
