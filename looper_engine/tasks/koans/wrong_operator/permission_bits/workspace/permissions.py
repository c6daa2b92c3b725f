"""Unix-style permission bits for the file-sharing API."""

READ = 0b100
WRITE = 0b010
EXECUTE = 0b001

_BITS = {"r": READ, "w": WRITE, "x": EXECUTE}


def parse_mode(text: str) -> int:
    """'rw-' -> READ | WRITE."""
    if len(text) != 3:
        raise ValueError(f"mode must be 3 characters: {text!r}")
    mode = 0
    for char, expected in zip(text, "rwx"):
        if char == expected:
            mode |= _BITS[char]
        elif char != "-":
            raise ValueError(f"unexpected {char!r} in mode {text!r}")
    return mode


def format_mode(mode: int) -> str:
    return "".join(char if mode & bit else "-" for char, bit in _BITS.items())


def has_permission(mode: int, wanted: int) -> bool:
    """True when every bit of `wanted` is set in `mode`."""
    return mode & wanted != 0


def revoke(mode: int, bits: int) -> int:
    return mode & ~bits
