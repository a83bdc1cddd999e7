"""Opaque keyset cursors: base64url JSON of the last row's sort key."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

from nas_service.domain import ValidationFailed


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "cursor") -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        ts, rid = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(ts), uuid.UUID(rid)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ValidationFailed.one(
            field, "not a cursor returned by this API (pass next_cursor unchanged)"
        ) from exc
