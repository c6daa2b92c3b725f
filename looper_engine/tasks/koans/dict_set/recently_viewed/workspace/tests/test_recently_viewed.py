from recently_viewed import dedupe, record_view, recently_viewed


def test_dedupe_keeps_first_occurrence():
    assert dedupe([5, 1, 5, 2, 1]) == [5, 1, 2]


def test_most_recent_first():
    assert recently_viewed([7, 42, 3, 7]) == [7, 3, 42]


def test_excludes_current_product():
    assert recently_viewed([7, 42, 3, 7], current=7) == [3, 42]


def test_limit():
    views = [10, 20, 30, 40, 50, 60, 70, 80]
    assert recently_viewed(views, limit=3) == [80, 70, 60]


def test_record_view_keeps_the_tail():
    assert record_view([1, 2, 3], 4, keep=3) == [2, 3, 4]
