import pytest

from retrying import backoff_delays, retry


class Flaky:
    def __init__(self, failures, exc=ConnectionError):
        self.failures = failures
        self.exc = exc
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc(f"attempt {self.calls} failed")
        return "ok"


def test_succeeds_after_failures():
    slept = []
    assert retry(Flaky(2), attempts=3, sleep=slept.append) == "ok"
    assert slept == [0.1, 0.2]


def test_gives_up_with_the_last_error():
    slept = []
    fn = Flaky(5)
    with pytest.raises(ConnectionError, match="attempt 3 failed"):
        retry(fn, attempts=3, sleep=slept.append)
    assert fn.calls == 3
    assert slept == [0.1, 0.2]


def test_other_errors_are_not_retried():
    fn = Flaky(1, exc=KeyError)
    with pytest.raises(KeyError):
        retry(fn, sleep=lambda _: None)
    assert fn.calls == 1


def test_single_attempt():
    with pytest.raises(TimeoutError):
        retry(Flaky(1, exc=TimeoutError), attempts=1, sleep=lambda _: None)


def test_backoff_is_capped():
    assert backoff_delays(6, base=0.5, cap=2.0) == [0.5, 1.0, 2.0, 2.0, 2.0]
