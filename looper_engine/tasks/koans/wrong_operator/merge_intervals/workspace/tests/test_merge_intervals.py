import pytest

from intervals import free_gaps, merge_intervals


def test_overlapping_slots_merge():
    assert merge_intervals([(540, 620), (600, 660)]) == [(540, 660)]


def test_disjoint_slots_stay_apart():
    assert merge_intervals([(700, 720), (540, 600)]) == [(540, 600), (700, 720)]


def test_touching_slots_merge():
    assert merge_intervals([(540, 600), (600, 660)]) == [(540, 660)]


def test_contained_slot():
    assert merge_intervals([(540, 700), (560, 580)]) == [(540, 700)]


def test_free_gaps():
    assert free_gaps([(600, 660), (540, 600), (720, 750)], 480, 1020) == [(480, 540), (660, 720), (750, 1020)]


def test_reversed_slot_is_rejected():
    with pytest.raises(ValueError):
        merge_intervals([(600, 540)])
