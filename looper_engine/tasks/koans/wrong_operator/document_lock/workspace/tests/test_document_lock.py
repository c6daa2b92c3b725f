from access import Document, User, can_edit, editable_by

ANA = User("ana")
BO = User("bo")
ROOT = User("root", is_admin=True)


def test_owner_and_editors_can_edit():
    doc = Document(owner="ana", editors={"bo"})
    assert can_edit(ANA, doc)
    assert can_edit(BO, doc)
    assert not can_edit(User("cy"), doc)


def test_locked_document_blocks_editors():
    assert not can_edit(BO, Document(owner="ana", editors={"bo"}, locked=True))


def test_locked_document_blocks_owner():
    assert not can_edit(ANA, Document(owner="ana", locked=True))


def test_admin_can_edit_locked_document():
    assert can_edit(ROOT, Document(owner="ana", locked=True))


def test_suspended_user():
    assert not can_edit(User("ana", suspended=True), Document(owner="ana"))


def test_editable_by():
    docs = [Document(owner="ana"), Document(owner="ana", locked=True), Document(owner="bo")]
    assert editable_by(ANA, docs) == [docs[0]]
