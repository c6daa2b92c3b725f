from tags import flatten, unique_tags


def test_numbers():
    assert list(flatten([1, [2, [3, (4, 5)]], []])) == [1, 2, 3, 4, 5]


def test_strings_are_leaves():
    assert list(flatten(["news", ["local", ["sport"]]])) == ["news", "local", "sport"]


def test_unique_tags():
    assert unique_tags(["News", [" local ", ["news", ""]], ("Sport",)]) == ["news", "local", "sport"]
