from grouping import Record, error_digest, group_by_service

RECORDS = [
    Record("api", "ERROR", "timeout"),
    Record("worker", "INFO", "started"),
    Record("api", "ERROR", "bad gateway"),
    Record("worker", "ERROR", "oom"),
]


def test_nothing_to_group():
    assert group_by_service([]) == {}


def test_groups_keep_order():
    groups = group_by_service(RECORDS)
    assert [r.message for r in groups["api"]] == ["timeout", "bad gateway"]
    assert [r.message for r in groups["worker"]] == ["started", "oom"]


def test_digest():
    assert error_digest(RECORDS) == [
        "api: 2 error(s), last: bad gateway",
        "worker: 1 error(s), last: oom",
    ]
