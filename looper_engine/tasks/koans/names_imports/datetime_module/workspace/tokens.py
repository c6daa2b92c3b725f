"""Issue API tokens with a fixed lifetime and check their expiry."""

import datetime
import secrets
from dataclasses import dataclass

LIFETIME = datetime.timedelta(hours=12)


@dataclass(frozen=True)
class Token:
    value: str
    issued_at: datetime.datetime

    @property
    def expires_at(self) -> datetime.datetime:
        return self.issued_at + LIFETIME

    def is_expired(self, now: datetime.datetime) -> bool:
        return now >= self.expires_at


def issue_token() -> Token:
    return Token(value=secrets.token_urlsafe(16), issued_at=datetime.now(datetime.timezone.utc))


def from_row(value: str, issued_at_iso: str) -> Token:
    issued_at = datetime.datetime.fromisoformat(issued_at_iso)
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must include a timezone")
    return Token(value, issued_at)
