from audit import AuditLog


def test_records_in_order():
    log = AuditLog("r1")
    log.record("login")
    log.record("view invoice")
    assert log.events() == ["login", "view invoice"]


def test_logs_are_separate():
    first = AuditLog("a")
    first.record("login")
    second = AuditLog("b")
    second.record("logout")
    assert first.events() == ["login"]
    assert second.events() == ["logout"]


def test_render():
    log = AuditLog("r9")
    log.record("delete")
    lines = log.render().splitlines()
    assert lines[0] == "request r9"
    assert len(lines) == 2 and lines[1].endswith(" delete")
