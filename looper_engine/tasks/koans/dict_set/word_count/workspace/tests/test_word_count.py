from word_stats import top_words, word_counts


def test_empty_text():
    assert word_counts("") == {}


def test_counts():
    assert word_counts("the cat and the hat") == {"the": 2, "cat": 1, "and": 1, "hat": 1}


def test_case_insensitive():
    assert word_counts("Go go GO") == {"go": 3}


def test_top_words():
    assert top_words("b a b c a b d", 2) == [("b", 3), ("a", 2)]
