"""Checking a job's ``dataset.options`` against its dataset's options model (a catalog entry;
the models live in ``nas_service.catalog.dataset_options``)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from nas_service.catalog import CATALOG, UnknownEntry
from nas_service.catalog.dataset_options import (
    DEFAULT_TEST_FRACTION,
    DEFAULT_VAL_FRACTION,
    MAX_SYNTHETIC_VALUES,
    SYNTHETIC_DEFAULT_N,
    ImageFolderOptions,
    SplitOptions,
    SyntheticOptions,
)
from nas_service.domain.errors import FieldError, field_errors

__all__ = [
    "DEFAULT_TEST_FRACTION",
    "DEFAULT_VAL_FRACTION",
    "MAX_SYNTHETIC_VALUES",
    "SYNTHETIC_DEFAULT_N",
    "ImageFolderOptions",
    "SplitOptions",
    "SyntheticOptions",
    "dataset_option_errors",
]


def dataset_option_errors(kind: str, options: dict[str, Any]) -> list[FieldError]:
    """The problems with ``options`` for a dataset of ``kind`` (a built-in name or an uploaded
    dataset's format: a catalog entry, whose options model this checks), one per field,
    named ``dataset.options.<option>``."""
    try:
        model = CATALOG.get("dataset", kind).options
    except UnknownEntry as exc:
        return [FieldError("dataset", str(exc))]
    if model is None:
        return (
            [FieldError("dataset.options", f"{kind} datasets take no options")] if options else []
        )
    try:
        model.model_validate(options)
    except ValidationError as exc:
        unknown = f"unknown option for {kind} datasets; allowed: {sorted(model.model_fields)}"
        errors = [
            {**e, "msg": unknown} if e["type"] == "extra_forbidden" else e for e in exc.errors()
        ]
        return field_errors(errors, prefix="dataset.options", whole="dataset.options")
    return []
