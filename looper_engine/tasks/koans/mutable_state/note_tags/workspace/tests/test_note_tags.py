from notes import new_note, tag, with_tag


def test_tagging_normalises_and_dedupes():
    note = new_note("groceries")
    tag(note, "Urgent", "urgent ", "home")
    assert note.tags == ["urgent", "home"]


def test_notes_have_their_own_tags():
    groceries = new_note("groceries")
    taxes = new_note("taxes")
    tag(groceries, "urgent")
    assert taxes.tags == []


def test_with_tag():
    a = new_note("a", ["work"])
    b = new_note("b")
    c = new_note("c")
    tag(c, "work")
    assert with_tag([a, b, c], "Work") == ["a", "c"]
