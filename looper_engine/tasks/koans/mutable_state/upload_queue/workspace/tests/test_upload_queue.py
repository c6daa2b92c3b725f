from uploads import Upload, drop_failed, pending_bytes


def make(*flags):
    return [Upload(f"file{i}", 10 * (i + 1), failed) for i, failed in enumerate(flags)]


def test_single_failure():
    queue = make(False, True, False)
    removed = drop_failed(queue)
    assert [u.name for u in removed] == ["file1"]
    assert [u.name for u in queue] == ["file0", "file2"]


def test_adjacent_failures():
    queue = make(False, True, True, False)
    removed = drop_failed(queue)
    assert [u.name for u in removed] == ["file1", "file2"]
    assert [u.name for u in queue] == ["file0", "file3"]


def test_cleans_in_place():
    queue = make(True, True, True)
    alias = queue
    drop_failed(queue)
    assert alias == []


def test_pending_bytes():
    assert pending_bytes(make(False, True, False)) == 10 + 30
