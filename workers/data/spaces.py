"""Match a search space to a dataset: the shared fitting rule (``search_spaces.fitting``) read
from a loaded dataset's shape and classes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_spaces import DataShape, SearchSpace, SpaceFitError, fit_space, fitted_options
from workers.data.base import DatasetError, DatasetSplits


def data_shape(data: DatasetSplits) -> DataShape:
    return DataShape.of(data.input_shape, data.num_classes)


def space_options_for(space_id: str, data: DatasetSplits) -> dict[str, Any]:
    """Options for ``get_space(space_id, **options)`` so that the space fits ``data``."""
    try:
        return fitted_options(space_id, data_shape(data))
    except SpaceFitError as exc:
        raise DatasetError(f"dataset '{data.name}': {exc.reason}") from exc


def space_for(space_id: str, options: Mapping[str, Any], data: DatasetSplits) -> SearchSpace:
    """The space a job builds for ``data``: the same rule the API validated at submission."""
    try:
        return fit_space(space_id, options, data_shape(data))
    except SpaceFitError as exc:
        raise DatasetError(f"{exc.reason} ({exc.field})") from exc
