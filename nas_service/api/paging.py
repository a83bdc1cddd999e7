"""The one pagination of every list endpoint, and the validators of single-resource reads.

Every list answers ``{"items": [...], "next_cursor": <str | null>}``; when there is a next page
it also sends ``Link: </api/v1/...?...&cursor=<next_cursor>>; rel="next"`` (RFC 8288), the
request's own URL (root-relative, every other parameter kept) with ``cursor`` replaced.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Query, Request, Response

from nas_service.api.problems import responses

CursorQuery = Annotated[
    str | None,
    Query(
        max_length=2048,
        description="next_cursor of the previous page (opaque); omit for the first page",
    ),
]

LINK_HEADER: dict[str, Any] = {
    "Link": {
        "description": 'the next page, when there is one: `<url>; rel="next"` (RFC 8288)',
        "schema": {"type": "string"},
    }
}
ETAG_HEADER: dict[str, Any] = {
    "ETag": {"description": "the representation's validator", "schema": {"type": "string"}}
}


def list_responses(*codes: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries of a list endpoint: its 200 documents the ``Link`` header."""
    return {200: {"headers": LINK_HEADER}, **responses(*codes, **described)}


def next_url(request: Request, param: str, value: str | int) -> str:
    """The request's root-relative URL with ``param`` set to ``value``, the rest kept."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != param]
    params.append((param, str(value)))
    return f"{request.url.path}?{urlencode(params)}"


def link_next(request: Request, response: Response, next_cursor: str | None) -> None:
    if next_cursor:
        response.headers["Link"] = f'<{next_url(request, "cursor", next_cursor)}>; rel="next"'


def body_etag(body: bytes) -> str:
    """A strong validator of a rendered body: equal bytes, equal tags."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: ``*`` or any listed tag equal to ``etag`` (weak comparison)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(t.strip().removeprefix("W/") == bare for t in if_none_match.split(","))
