import datetime

import pytest

from tokens import LIFETIME, from_row, issue_token


def test_from_row():
    token = from_row("abc", "2024-05-01T08:00:00+00:00")
    assert token.expires_at == datetime.datetime(2024, 5, 1, 20, 0, tzinfo=datetime.timezone.utc)
    assert not token.is_expired(datetime.datetime(2024, 5, 1, 19, 59, tzinfo=datetime.timezone.utc))
    assert token.is_expired(token.expires_at)


def test_naive_timestamps_are_rejected():
    with pytest.raises(ValueError):
        from_row("abc", "2024-05-01T08:00:00")


def test_issue_token():
    before = datetime.datetime.now(datetime.timezone.utc)
    token = issue_token()
    after = datetime.datetime.now(datetime.timezone.utc)
    assert before <= token.issued_at <= after
    assert token.expires_at - token.issued_at == LIFETIME
    assert len(token.value) >= 16


def test_tokens_differ():
    assert issue_token().value != issue_token().value
