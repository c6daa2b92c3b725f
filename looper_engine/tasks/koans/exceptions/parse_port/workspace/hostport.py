"""Parse "host:port" strings from the command line and config files."""

DEFAULT_PORT = 8080


class AddressError(ValueError):
    """An address the user typed that cannot be used."""


def parse_port(text: str) -> int:
    try:
        port = int(text)
    except TypeError:
        raise AddressError(f"port is not a number: {text!r}") from None
    if not 0 < port < 65536:
        raise AddressError(f"port out of range: {port}")
    return port


def parse_address(text: str) -> tuple[str, int]:
    """'example.org:8000' -> ('example.org', 8000); the port is optional."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, DEFAULT_PORT
    if not host:
        raise AddressError(f"missing host in {text!r}")
    return host, parse_port(port)
