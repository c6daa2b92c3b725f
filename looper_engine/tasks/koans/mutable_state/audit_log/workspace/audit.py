"""Per-request audit logs."""

from datetime import datetime, timezone


class AuditLog:
    """Collects the events of one request; written out when the request ends."""

    entries: list[tuple[str, str]] = []

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id

    def record(self, event: str) -> None:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.entries.append((stamp, event))

    def events(self) -> list[str]:
        return [event for _, event in self.entries]

    def render(self) -> str:
        lines = [f"request {self.request_id}"]
        lines += [f"  {stamp} {event}" for stamp, event in self.entries]
        return "\n".join(lines)
