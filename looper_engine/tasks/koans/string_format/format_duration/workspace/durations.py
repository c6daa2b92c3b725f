"""Human-readable durations for the job history table."""


def format_duration(seconds: float) -> str:
    """Render as H:MM:SS with unpadded hours, e.g. 3725 -> '1:02:05'."""
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:2d}:{secs:2d}"


def parse_duration(text: str) -> int:
    """The inverse of format_duration: 'H:MM:SS' -> seconds."""
    hours, minutes, secs = (int(part) for part in text.split(":"))
    if not (0 <= minutes < 60 and 0 <= secs < 60):
        raise ValueError(f"bad duration {text!r}")
    return hours * 3600 + minutes * 60 + secs
