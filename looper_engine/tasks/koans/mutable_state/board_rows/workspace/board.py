"""The game board for the tile puzzle."""


class Board:
    def __init__(self, width: int, height: int, fill: str = ".") -> None:
        if width < 1 or height < 1:
            raise ValueError("the board must be at least 1x1")
        self.width = width
        self.height = height
        self.cells = [[fill] * width] * height

    def place(self, x: int, y: int, tile: str) -> None:
        if not (0 <= x < self.width and 0 <= y < self.height):
            raise IndexError(f"({x}, {y}) is off the board")
        self.cells[y][x] = tile

    def row(self, y: int) -> str:
        return "".join(self.cells[y])

    def render(self) -> str:
        return "\n".join(self.row(y) for y in range(self.height))

    def count(self, tile: str) -> int:
        return sum(row.count(tile) for row in self.cells)
