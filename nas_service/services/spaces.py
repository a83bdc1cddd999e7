"""Search-space lookups for validation and the catalogue (torch-free specs only)."""

from __future__ import annotations

from typing import Any

from nas_service.domain import ValidationFailed
from search_spaces import DataShape


def build_space(
    space_id: str,
    options: dict[str, Any],
    field: str = "space",
    *,
    data: DataShape | None = None,
) -> Any:
    """The space object, or ``ValidationFailed`` naming ``field.id`` / ``field.options``.

    With ``data`` (the dataset's shape) the space is fitted to it by the rule the runner
    follows (``search_spaces.fitting``): exactly the space the job will train."""
    from search_spaces import SpaceFitError, UnknownSpace, fit_space, get_space

    try:
        if data is not None:
            return fit_space(space_id, options, data)
        return get_space(space_id, **options)
    except UnknownSpace as exc:
        raise ValidationFailed.one(f"{field}.id", str(exc)) from exc
    except SpaceFitError as exc:
        raise ValidationFailed.one(exc.field.replace("space", field, 1), exc.reason) from exc
    except TypeError as exc:
        # An unexpected keyword: name it instead of echoing the constructor's signature.
        text = str(exc)
        name = text.rsplit("'", 2)[-2] if text.count("'") >= 2 else text
        raise ValidationFailed.one(
            f"{field}.options.{name}" if "unexpected keyword" in text else f"{field}.options",
            f"unknown option '{name}' for space '{space_id}'"
            if "unexpected keyword" in text
            else text,
        ) from exc
    except (ValueError, OverflowError) as exc:  # ValueError includes InvalidArch
        raise ValidationFailed.one(f"{field}.options", str(exc)) from exc


def list_space_summaries() -> list[dict[str, Any]]:
    """Every space of the catalog with its summary (dimensions, size, MACs range)."""
    from nas_service.catalog import CATALOG
    from nas_service.catalog.spaces import summary

    return [
        {"id": e.name, "description": e.summary, **e.info, **summary(e.name)}
        for e in CATALOG.entries("space")
    ]
