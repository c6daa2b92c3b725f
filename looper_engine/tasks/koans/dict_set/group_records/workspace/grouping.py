"""Group log records for the per-service error digest."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Record:
    service: str
    level: str
    message: str


def group_by_service(records: list[Record]) -> dict[str, list[Record]]:
    groups: dict[str, list[Record]] = {}
    for record in records:
        groups.get(record.service, []).append(record)
    return groups


def error_digest(records: list[Record]) -> list[str]:
    """One line per service that logged errors, the service with most errors first."""
    errors = [record for record in records if record.level == "ERROR"]
    groups = group_by_service(errors)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    return [f"{service}: {len(items)} error(s), last: {items[-1].message}" for service, items in ordered]
