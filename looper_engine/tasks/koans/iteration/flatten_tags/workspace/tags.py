"""Flatten the nested tag lists of the CMS import (tags can nest arbitrarily deep)."""

from collections.abc import Iterable, Iterator


def flatten(items: Iterable) -> Iterator:
    """The leaves of arbitrarily nested iterables, depth first. Strings are leaves."""
    for item in items:
        if isinstance(item, Iterable):
            yield from flatten(item)
        else:
            yield item


def unique_tags(nested: Iterable) -> list[str]:
    """Lower-cased, stripped tags in first-seen order, without duplicates or empty tags."""
    seen: list[str] = []
    for tag in flatten(nested):
        tag = str(tag).strip().lower()
        if tag and tag not in seen:
            seen.append(tag)
    return seen
