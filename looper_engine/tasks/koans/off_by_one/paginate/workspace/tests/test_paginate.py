import pytest

from pagination import paginate, total_pages

ITEMS = list(range(1, 26))


def test_first_page_starts_with_first_item():
    page = paginate(ITEMS, 1, per_page=10)
    assert page.items == list(range(1, 11))
    assert page.has_next and not page.has_previous


def test_last_page_is_partial():
    page = paginate(ITEMS, 3, per_page=10)
    assert page.items == [21, 22, 23, 24, 25]
    assert not page.has_next


def test_every_item_appears_exactly_once():
    seen = []
    for number in range(1, total_pages(len(ITEMS), 7) + 1):
        seen.extend(paginate(ITEMS, number, per_page=7).items)
    assert seen == ITEMS


def test_out_of_range_page_is_rejected():
    with pytest.raises(ValueError):
        paginate(ITEMS, 4, per_page=10)


def test_empty_listing_has_one_empty_page():
    page = paginate([], 1)
    assert page.items == [] and page.total_pages == 1
