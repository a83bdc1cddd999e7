"""One space-fitting rule, shared by the API (at submission) and the runner (before training).

A space is fitted to a dataset from what the dataset's metadata says, nothing else: the shape of
one sample and the number of classes (:class:`DataShape`). Each space registers a ``fit``
function (``register_space(..., fit=...)``) that turns that shape into options (input channels
or features, classes, small-input stem, resolutions) or refuses it (an image space on a table).
Options the user gives override the fitted ones, except the data-bound ones (``data_bound``):
those must agree with the data, and a disagreement is an error naming the option. The API
validates exactly the space the runner will build, so nothing knowable at submission fails
after a worker claims the job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from search_spaces.base import SearchSpace


@dataclass(frozen=True)
class DataShape:
    """What a space needs to know of a dataset: one sample's shape and the class count."""

    input_shape: tuple[int, ...]
    num_classes: int

    @classmethod
    def of(cls, input_shape: Sequence[int], num_classes: int) -> DataShape:
        return cls(tuple(int(s) for s in input_shape), int(num_classes))

    @property
    def modality(self) -> str:
        """``image`` (C, H, W), ``table`` (D,) or ``other``."""
        return {3: "image", 1: "table"}.get(len(self.input_shape), "other")


class SpaceFitError(ValueError):
    """The space cannot take this data (``field`` names the space option or the dataset)."""

    def __init__(self, field: str, reason: str):
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")

    def __reduce__(self) -> tuple[type[SpaceFitError], tuple[str, str]]:
        return (type(self), (self.field, self.reason))


def fitted_options(space_id: str, data: DataShape) -> dict[str, Any]:
    """The options that make ``space_id`` fit ``data`` (raises :class:`SpaceFitError`)."""
    from search_spaces.registry import space_entry

    return dict(space_entry(space_id).fit(data))


def fit_space(space_id: str, options: Mapping[str, Any], data: DataShape) -> SearchSpace:
    """The space a job on ``data`` trains and searches: fitted options, the user's on top,
    data-bound options checked against the data."""
    from search_spaces.registry import get_space, space_entry

    entry = space_entry(space_id)
    fitted = dict(entry.fit(data))
    for key in entry.data_bound:
        if key in options and key in fitted and options[key] != fitted[key]:
            raise SpaceFitError(
                f"space.options.{key}",
                f"the space has {key}={options[key]!r} but the dataset has {fitted[key]!r} "
                "(leave it out: it is set from the data)",
            )
    return get_space(space_id, **{**fitted, **dict(options)})
