"""File sizes for the download list, in binary units (1 KiB = 1024 bytes)."""

UNITS = ["B", "KiB", "MiB", "GiB", "TiB"]


def human_size(num_bytes: int) -> str:
    """1536 -> '1.5 KiB'; plain bytes have no decimals: 512 -> '512 B'."""
    if num_bytes < 0:
        raise ValueError("a size cannot be negative")
    size = float(num_bytes)
    for unit in UNITS:
        if size < 1024 or unit == UNITS[-1]:
            break
        size /= 1024
    if unit == "B":
        return f"{int(size)} B"
    return f"{size:.1} {unit}"


def total_size(sizes: list[int]) -> str:
    return human_size(sum(sizes))
