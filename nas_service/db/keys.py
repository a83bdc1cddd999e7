"""API keys: only the sha256 of a key is stored; the key itself is shown once at creation."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nas_service.db.models import ApiKey
from nas_service.db.types import utcnow

KEY_PREFIX = "nas_"


def hash_key(key: str) -> str:
    # Keys are 256-bit random tokens, so a plain (fast) hash is enough: there is nothing to
    # brute-force, unlike passwords.
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(s: Session, name: str) -> tuple[ApiKey, str]:
    """Returns the row and the plaintext key (never stored)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, key_hash=hash_key(key), prefix=key[:10], created_at=utcnow())
    s.add(row)
    s.flush()
    return row, key


def find_key(s: Session, key: str) -> ApiKey | None:
    """The active (not revoked) key row for a presented key."""
    q = select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    return s.scalars(q).one_or_none()


def get_key_by_name(s: Session, name: str) -> ApiKey | None:
    return s.scalars(select(ApiKey).where(ApiKey.name == name)).one_or_none()


def list_keys(s: Session) -> list[ApiKey]:
    return list(s.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_key(s: Session, name: str) -> bool:
    stmt = (
        update(ApiKey)
        .where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .returning(ApiKey.id)
    )
    return s.execute(stmt, execution_options={"synchronize_session": False}).first() is not None
