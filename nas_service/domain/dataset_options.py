"""Checking a job's ``dataset.options`` against its dataset's options model (a catalog entry:
each format's module in ``nas_service.catalog.datasets`` defines it)."""

from __future__ import annotations

from typing import Any

from nas_service.catalog import CATALOG, UnknownEntry
from nas_service.domain.errors import FieldError, option_errors


def dataset_option_errors(kind: str, options: dict[str, Any]) -> list[FieldError]:
    """The problems with ``options`` for a dataset of ``kind`` (a built-in name or an uploaded
    dataset's format: a catalog entry, whose options model this checks), one per field,
    named ``dataset.options.<option>``."""
    try:
        model = CATALOG.get("dataset", kind).options
    except UnknownEntry as exc:
        return [FieldError("dataset", str(exc))]
    return option_errors(model, options, field="dataset.options", owner=f"{kind} datasets")
