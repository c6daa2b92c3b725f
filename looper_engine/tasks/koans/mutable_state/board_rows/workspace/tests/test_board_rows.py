import pytest

from board import Board


def test_empty_board():
    assert Board(3, 2).render() == "...\n..."


def test_place_one_tile():
    board = Board(3, 3)
    board.place(1, 0, "X")
    assert board.render() == ".X.\n...\n..."
    assert board.count("X") == 1


def test_place_several_tiles():
    board = Board(2, 2)
    board.place(0, 0, "A")
    board.place(1, 1, "B")
    assert board.render() == "A.\n.B"


def test_off_board():
    with pytest.raises(IndexError):
        Board(2, 2).place(2, 0, "X")
