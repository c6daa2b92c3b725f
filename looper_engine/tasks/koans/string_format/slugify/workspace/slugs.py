"""URL slugs for blog posts."""

import re
import unicodedata

MAX_LENGTH = 60


def slugify(title: str) -> str:
    """'Hello, World!' -> 'hello-world': ASCII only, words joined by single hyphens."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^A-Za-z0-9]", "-", text.lower())
    text = text.strip("-")
    return text[:MAX_LENGTH].rstrip("-")


def unique_slug(title: str, taken: set[str]) -> str:
    """A slug for `title` that is not in `taken`: 'post', 'post-2', 'post-3', ..."""
    base = slugify(title) or "post"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug
