"""RFC 9457 problem+json responses and the exception handlers that produce them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from nas_service.api.route_table import RouteTable
from nas_service.domain import DomainError, FieldError, Unauthorized
from nas_service.domain.errors import plain_reason

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"
HTTP_CODES = {
    400: "malformed_body",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}


class FieldErrorOut(BaseModel):
    field: str
    reason: str


class Problem(BaseModel):
    """An error (RFC 9457). ``code`` is stable; match on it, not on ``title`` or ``detail``."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str
    errors: list[FieldErrorOut] | None = None


def problem(
    request: Request,
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: Sequence[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:nas-service:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.url.path,
    }
    if errors is not None:
        body["errors"] = list(errors)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def field_path(loc: Sequence[Any]) -> str:
    """('body', 'search', 'objectives', 1, 'bound') -> 'search.objectives[1].bound'."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "form"):
        parts = parts[1:]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif "[" in str(p) or str(p).startswith("function-"):
            continue  # pydantic's internal schema tags, meaningless to a user
        else:
            out += ("." if out else "") + str(p)
    return out or "body"


def _reason(err: dict[str, Any]) -> str:
    return plain_reason(str(err.get("msg", "invalid")))


def _malformed_json(errors: Sequence[Any]) -> str | None:
    """The reason a body is not JSON at all (FastAPI's ``json_invalid``), else None."""
    for e in errors:
        if e.get("type") == "json_invalid":
            loc = list(e.get("loc", ()))
            pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
            why = (e.get("ctx") or {}).get("error") or "JSON decode error"
            where = f" at character {pos}" if pos is not None else ""
            return f"the body is not valid JSON{where}: {why}"
    return None


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers at this request's path (for ``Allow``)."""
    table = getattr(request.app.state, "route_table", None)
    if table is None:
        table = request.app.state.route_table = RouteTable(request.app)
    return table.allowed(request.url.path)


def install(app: FastAPI) -> None:
    async def on_domain(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        found = getattr(exc, "errors", None)
        errors = None
        if found:
            errors = [{"field": e.field, "reason": e.reason} for e in found]
            assert all(isinstance(e, FieldError) for e in found)
        headers = dict(getattr(exc, "headers", None) or {})
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        return problem(
            request, exc.status, exc.code, exc.title, exc.detail, errors, headers or None
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        malformed = _malformed_json(exc.errors())
        if malformed is not None:
            errors = [{"field": "body", "reason": malformed}]
            return problem(request, 400, "malformed_body", "Malformed body", malformed, errors)
        errors = [
            {"field": field_path(e.get("loc", ())), "reason": _reason(e)} for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:5])
        return problem(request, 422, "validation_error", "Invalid input", detail, errors)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        title = code.replace("_", " ").capitalize()
        headers = dict(exc.headers or {})
        detail = str(exc.detail)
        if exc.status_code == 405:
            allow = allowed_methods(request)
            headers["Allow"] = ", ".join(allow)
            detail = f"{request.method} is not allowed on {request.url.path}; allowed: " + (
                ", ".join(allow)
            )
        return problem(request, exc.status_code, code, title, detail, headers=headers or None)

    async def on_data_error(request: Request, exc: Exception) -> JSONResponse:
        # A value the database cannot store (out of a column's range, a NUL in text): the
        # request's fault. Name the database's own reason, first line only.
        orig = getattr(exc, "orig", exc)
        reason = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
        errors = [{"field": "request", "reason": f"a value cannot be stored: {reason}"}]
        return problem(request, 422, "validation_error", "Invalid input", reason, errors)

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            request,
            500,
            "internal_error",
            "Internal server error",
            "an unexpected error occurred; the server log has the details",
        )

    app.add_exception_handler(DomainError, on_domain)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(DataError, on_data_error)
    app.add_exception_handler(Exception, on_error)


DEFAULT_DESCRIPTIONS = {
    400: "the request body cannot be parsed (malformed JSON or multipart)",
    401: "missing, unknown or revoked API key",
    404: "no such resource for this key",
    405: "the method is not allowed on this path; Allow lists those that are",
    409: "conflicts with the resource's state",
    413: "payload too large",
    422: "invalid input; errors[] names each field and why",
    429: "too many active jobs for this key",
    500: "server-side failure",
    503: "not ready",
}


def responses(*codes: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for problem+json answers: ``responses(401, 404, c409="...")``."""
    out: dict[int | str, dict[str, Any]] = {}
    items = [(c, DEFAULT_DESCRIPTIONS.get(c, "error")) for c in codes]
    items += [(int(k.lstrip("c")), v) for k, v in described.items()]
    for code, desc in items:
        out[code] = {
            "model": Problem,
            "description": desc,
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        }
    return out
