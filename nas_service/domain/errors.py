"""Domain exceptions. The API renders each as RFC 9457 problem+json with its stable ``code``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError


@dataclass(frozen=True)
class FieldError:
    """One invalid input: ``field`` is a dotted path such as ``search.objectives[1].bound``."""

    field: str
    reason: str


def plain_reason(msg: str) -> str:
    """pydantic's message without the "Value error, " it puts before a validator's own words."""
    return msg.removeprefix("Value error, ")


def field_errors(
    errors: Iterable[Mapping[str, Any]], *, prefix: str = "", whole: str
) -> list[FieldError]:
    """pydantic's errors of one model as field errors: each location joined with dots under
    ``prefix``; an error of the whole model (a model validator's) is named ``whole``."""
    out = []
    for e in errors:
        loc = ".".join(str(p) for p in e["loc"])
        field = (f"{prefix}.{loc}" if prefix else loc) if loc else whole
        out.append(FieldError(field, plain_reason(str(e["msg"]))))
    return out


def option_errors(
    model: type[BaseModel] | None, options: Mapping[str, Any], *, field: str, owner: str
) -> list[FieldError]:
    """The problems with ``options`` for ``owner`` (a searcher, a dataset kind) whose options
    model is ``model``, one per option, named ``<field>.<option>``; an unknown option's reason
    lists the allowed ones."""
    if model is None:
        return [FieldError(field, f"{owner} takes no options")] if options else []
    try:
        model.model_validate(dict(options))
    except ValidationError as exc:
        unknown = f"unknown option for {owner}; allowed: {sorted(model.model_fields)}"
        errors = [
            {**e, "msg": unknown} if e["type"] == "extra_forbidden" else e for e in exc.errors()
        ]
        return field_errors(errors, prefix=field, whole=field)
    return []


class DomainError(Exception):
    code = "error"
    status = 400
    title = "Bad request"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    code = "not_found"
    status = 404
    title = "Not found"


class Conflict(DomainError):
    code = "conflict"
    status = 409
    title = "Conflict"


class Unauthorized(DomainError):
    code = "unauthorized"
    status = 401
    title = "Unauthorized"


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
    status = 413
    title = "Payload too large"


class TooManyJobs(DomainError):
    code = "too_many_jobs"
    status = 429
    title = "Too many active jobs"


class ExportFailed(DomainError):
    code = "export_failed"
    status = 500
    title = "Export failed"


class ValidationFailed(DomainError):
    code = "validation_error"
    status = 422
    title = "Invalid input"

    def __init__(self, errors: list[FieldError], detail: str | None = None):
        if not errors:
            raise ValueError("ValidationFailed needs at least one field error")
        text = detail or "; ".join(f"{e.field}: {e.reason}" for e in errors)
        super().__init__(text)
        self.errors = errors

    @classmethod
    def one(cls, field: str, reason: str) -> ValidationFailed:
        return cls([FieldError(field, reason)])
