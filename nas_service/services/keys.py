"""API keys for the admin command and the CLI, and request authentication."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from nas_service.db import ApiKey, Database
from nas_service.db import keys as repo
from nas_service.domain import Conflict, NotFound, Unauthorized, ValidationFailed


@dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


def _info(k: ApiKey) -> KeyInfo:
    return KeyInfo(k.id, k.name, k.prefix, k.created_at, k.revoked_at)


def create_key(db: Database, name: str) -> tuple[KeyInfo, str]:
    """A new key named ``name``; the plaintext is returned once and never stored."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationFailed.one("name", "a key name is 1-100 characters")
    with db.transaction() as s:
        if repo.get_key_by_name(s, name) is not None:
            raise Conflict(f"a key named {name!r} exists already")
        row, key = repo.create_key(s, name)
        return _info(row), key


def list_keys(db: Database) -> list[KeyInfo]:
    with db.transaction() as s:
        return [_info(k) for k in repo.list_keys(s)]


def revoke_key(db: Database, name: str) -> None:
    with db.transaction() as s:
        if not repo.revoke_key(s, name):
            raise NotFound(f"no active key named {name!r}")


def bearer_token(authorization: str | None) -> str:
    """The key in an ``Authorization: Bearer <key>`` header; Unauthorized when malformed."""
    if not authorization:
        raise Unauthorized("missing Authorization header; send 'Authorization: Bearer <key>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <key>'")
    return token.strip()


def authenticate(s: Session, authorization: str | None) -> ApiKey:
    """The key row of an ``Authorization: Bearer <key>`` header."""
    row = repo.find_key(s, bearer_token(authorization))
    if row is None:
        raise Unauthorized("unknown or revoked API key")
    return row
