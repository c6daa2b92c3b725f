"""Permission checks for shared documents."""

from dataclasses import dataclass, field


@dataclass
class User:
    name: str
    is_admin: bool = False
    suspended: bool = False


@dataclass
class Document:
    owner: str
    editors: set[str] = field(default_factory=set)
    locked: bool = False


def can_view(user: User, doc: Document) -> bool:
    return not user.suspended


def can_edit(user: User, doc: Document) -> bool:
    """Admins can edit anything. Owners and editors can edit unless the document is
    locked. Suspended users can edit nothing."""
    if user.suspended:
        return False
    return user.is_admin or user.name == doc.owner or user.name in doc.editors and not doc.locked


def editable_by(user: User, docs: list[Document]) -> list[Document]:
    return [doc for doc in docs if can_edit(user, doc)]
