"""One pagination for every list: opaque keyset cursors.

A cursor is base64url JSON ``[kind, key...]``: the list it belongs to and the sort key of the
last row of the page it ends. The next page is the rows strictly after that key in the list's
order, so pages never repeat or skip a row while rows are added. A cursor of another list, or
one that was not made here, is a validation error on ``cursor``; its values are checked for type
before they reach a query.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from nas_service.domain import ValidationFailed

T = TypeVar("T")
FIELD = "cursor"
BAD_CURSOR = "not a cursor returned by this API (pass next_cursor unchanged)"
MAX_CURSOR_CHARS = 2048


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(kind: str, *key: Any) -> str:
    """A cursor for list ``kind`` ending at ``key`` (datetimes and UUIDs as strings)."""
    values = [_jsonable(v) for v in key]
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, uuid.UUID):
        return str(v)
    return v


def decode_cursor(cursor: str, kind: str, *types: Callable[[Any], Any]) -> list[Any]:
    """The key of a cursor of list ``kind``, each value converted by its ``types`` entry (one
    per key element; see ``as_int``, ``as_float``, ``as_str``, ``as_datetime``, ``as_uuid``)."""
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(decoded, list) or len(decoded) != len(types) + 1:
            raise ValueError("wrong shape")
        if decoded[0] != kind:
            raise ValueError("another list's cursor")
        return [conv(v) for conv, v in zip(types, decoded[1:], strict=True)]
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, OverflowError) as exc:
        raise ValidationFailed.one(FIELD, BAD_CURSOR) from exc


MAX_BIGINT = 2**63 - 1


def as_int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not -MAX_BIGINT <= v <= MAX_BIGINT:
        raise TypeError("not an integer")
    return v


def as_float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError("not a number")
    return float(v)


def as_str(v: Any) -> str:
    if not isinstance(v, str) or "\x00" in v:
        raise TypeError("not a string")
    return v


def as_datetime(v: Any) -> datetime:
    out = datetime.fromisoformat(as_str(v))
    if out.tzinfo is None:
        raise ValueError("naive datetime")
    return out


def as_uuid(v: Any) -> uuid.UUID:
    return uuid.UUID(as_str(v))


def nullable(conv: Callable[[Any], T]) -> Callable[[Any], T | None]:
    return lambda v: None if v is None else conv(v)


def page_of(rows: Sequence[T], limit: int, cursor_of: Callable[[T], str]) -> Page[T]:
    """A page from ``limit + 1`` fetched rows: the extra row only says a next page exists."""
    items = list(rows[:limit])
    more = len(rows) > limit and bool(items)
    return Page(items, cursor_of(items[-1]) if more else None)
