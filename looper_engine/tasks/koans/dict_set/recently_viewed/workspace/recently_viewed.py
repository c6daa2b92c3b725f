"""The "recently viewed" strip on product pages (product ids)."""

MAX_SHOWN = 6


def dedupe(ids: list[int]) -> list[int]:
    """Drop repeated ids, keeping the first occurrence of each in its place."""
    return list(set(ids))


def recently_viewed(views: list[int], current: int | None = None, limit: int = MAX_SHOWN) -> list[int]:
    """Most recent first, without duplicates, leaving out the product shown right now.

    `views` lists product ids in the order they were viewed.
    """
    newest_first = [pid for pid in reversed(views) if pid != current]
    return dedupe(newest_first)[:limit]


def record_view(views: list[int], product_id: int, keep: int = 100) -> list[int]:
    """Append a view, keeping only the last `keep` raw views."""
    return (views + [product_id])[-keep:]
