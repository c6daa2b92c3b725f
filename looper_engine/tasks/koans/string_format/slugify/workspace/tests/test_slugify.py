from slugs import slugify, unique_slug


def test_simple_title():
    assert slugify("Release notes") == "release-notes"


def test_punctuation_collapses():
    assert slugify("Hello, World!") == "hello-world"
    assert slugify("Rock & Roll") == "rock-roll"


def test_accents_are_transliterated():
    assert slugify("Crème brûlée") == "creme-brulee"


def test_long_titles_are_cut():
    slug = slugify("word " * 30)
    assert len(slug) <= 60 and not slug.endswith("-")


def test_unique_slug():
    assert unique_slug("Hello, World!", {"hello-world", "hello-world-2"}) == "hello-world-3"
    assert unique_slug("!!!", set()) == "post"
