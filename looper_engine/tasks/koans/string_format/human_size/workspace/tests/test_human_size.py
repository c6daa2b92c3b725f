import pytest

from sizes import human_size, total_size


def test_bytes():
    assert human_size(0) == "0 B"
    assert human_size(512) == "512 B"


def test_kibibytes():
    assert human_size(1536) == "1.5 KiB"


def test_mebibytes():
    assert human_size(10 * 1024 * 1024) == "10.0 MiB"


def test_huge_sizes_stay_in_the_largest_unit():
    assert human_size(3 * 1024**5) == "3072.0 TiB"


def test_total():
    assert total_size([1024, 1024, 512]) == "2.5 KiB"


def test_negative():
    with pytest.raises(ValueError):
        human_size(-1)
