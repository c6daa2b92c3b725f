"""Notes with tags for the notes app."""

from dataclasses import dataclass


@dataclass
class Note:
    title: str
    tags: list[str]


def new_note(title: str, tags: list[str] = []) -> Note:
    return Note(title=title, tags=tags)


def tag(note: Note, *labels: str) -> None:
    """Add labels to the note, lower-cased, without duplicates."""
    for label in labels:
        label = label.strip().lower()
        if label and label not in note.tags:
            note.tags.append(label)


def with_tag(notes: list[Note], label: str) -> list[str]:
    """Titles of the notes carrying `label`."""
    return [note.title for note in notes if label.lower() in note.tags]
