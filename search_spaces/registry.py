"""Registry of search spaces: ``get_space(id, **options)`` and ``list_spaces()``. Torch-free.

A space registers its factory, a one-line description, the data it takes (``modality``:
``image``, ``table`` or ``any``) and how it fits a dataset (``fit``: a :class:`DataShape` ->
options; ``data_bound``: the options that must agree with the data). See
``search_spaces.fitting``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from search_spaces.base import SearchSpace
from search_spaces.fitting import DataShape, SpaceFitError

FitFn = Callable[[DataShape], Mapping[str, Any]]


@dataclass(frozen=True)
class SpaceEntry:
    id: str
    description: str
    factory: Callable[..., SearchSpace]
    modality: str
    fit_fn: FitFn
    data_bound: tuple[str, ...]

    def fit(self, data: DataShape) -> Mapping[str, Any]:
        if self.modality != "any" and data.modality != self.modality:
            raise SpaceFitError(
                "space.id",
                f"space '{self.id}' needs {self.modality} data; the dataset holds "
                f"{data.modality} samples of shape {list(data.input_shape)}",
            )
        return self.fit_fn(data)


_ENTRIES: dict[str, SpaceEntry] = {}


class UnknownSpace(KeyError):
    def __init__(self, space_id: str):
        self.space_id = space_id
        super().__init__(f"unknown search space '{space_id}'; known: {sorted(_ENTRIES)}")

    def __str__(self) -> str:
        return str(self.args[0])


def register_space(
    space_id: str,
    description: str,
    *,
    modality: str,
    fit: FitFn,
    data_bound: tuple[str, ...] = (),
) -> Callable[[Callable[..., SearchSpace]], Callable[..., SearchSpace]]:
    def deco(factory: Callable[..., SearchSpace]) -> Callable[..., SearchSpace]:
        _ENTRIES[space_id] = SpaceEntry(space_id, description, factory, modality, fit, data_bound)
        return factory

    return deco


def unregister_space(space_id: str) -> None:
    _ENTRIES.pop(space_id, None)


def space_entry(space_id: str) -> SpaceEntry:
    _load_builtin()
    if space_id not in _ENTRIES:
        raise UnknownSpace(space_id)
    return _ENTRIES[space_id]


def get_space(id: str, **options: Any) -> SearchSpace:
    return space_entry(id).factory(**options)


def list_spaces() -> dict[str, str]:
    """Space id -> one-line description."""
    _load_builtin()
    return {k: e.description for k, e in sorted(_ENTRIES.items())}


def _load_builtin() -> None:
    # Importing the modules registers them; done lazily so the registry has no import cycle.
    from search_spaces import mbv3, mlp  # noqa: F401
