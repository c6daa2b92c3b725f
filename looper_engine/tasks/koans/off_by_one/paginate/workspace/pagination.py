"""Page through result sets for the listing endpoints.

Pages are numbered from 1, as they appear in URLs (?page=1 is the first page).
"""

from dataclasses import dataclass
from math import ceil


@dataclass(frozen=True)
class Page:
    items: list
    number: int
    total_pages: int

    @property
    def has_next(self) -> bool:
        return self.number < self.total_pages

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def total_pages(count: int, per_page: int) -> int:
    if per_page < 1:
        raise ValueError("per_page must be at least 1")
    return max(1, ceil(count / per_page))


def paginate(items: list, page: int, per_page: int = 20) -> Page:
    """Return page `page` (1-based) of `items`."""
    pages = total_pages(len(items), per_page)
    if not 1 <= page <= pages:
        raise ValueError(f"page {page} out of range 1..{pages}")
    start = page * per_page
    return Page(items[start:start + per_page], page, pages)
