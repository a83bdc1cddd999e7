"""Registry of search spaces: ``get_space(id, **options)`` and ``list_spaces()``. Torch-free.

A space registers its factory, a one-line description, the data it takes (``modality``:
``image``, ``table`` or ``any``), how it fits a dataset (``fit``: a :class:`DataShape` ->
options; ``data_bound``: the options that must agree with the data; see
``search_spaces.fitting``) and where its torch half lives (``nn``: a module path, imported only
when a network is built). That torch module provides ``build_supernet(space)``,
``build_static(space, arch)`` and, for latency lookup tables, ``latency_units(space, arch)`` and
``covering_archs(space)`` (see ``search_spaces.nn``). Nothing else names a space: the API, the
runner, the latency table and the catalog all read this registry.

The built-in spaces are the modules in ``BUILTIN``; a space defined elsewhere (a plugin, a
test) registers itself when its module is imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
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
    nn: str | None

    def fit(self, data: DataShape) -> Mapping[str, Any]:
        if self.modality != "any" and data.modality != self.modality:
            raise SpaceFitError(
                "space.id",
                f"space '{self.id}' needs {self.modality} data; the dataset holds "
                f"{data.modality} samples of shape {list(data.input_shape)}",
            )
        return self.fit_fn(data)


_ENTRIES: dict[str, SpaceEntry] = {}
MODALITIES = ("image", "table", "any")
# The built-in spaces: importing a module registers it (lazily, so the registry has no cycle).
BUILTIN = ("search_spaces.mbv3", "search_spaces.mlp", "search_spaces.vit")


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
    nn: str | None = None,
) -> Callable[[Callable[..., SearchSpace]], Callable[..., SearchSpace]]:
    """``nn``: the module of the space's supernet, static builder and latency units (None: the
    space has only its spec, so jobs cannot train it)."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")

    def deco(factory: Callable[..., SearchSpace]) -> Callable[..., SearchSpace]:
        _ENTRIES[space_id] = SpaceEntry(
            space_id, description, factory, modality, fit, data_bound, nn
        )
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
    space = space_entry(id).factory(**options)
    if space.id != id:
        raise TypeError(f"the factory of space '{id}' built a space with id '{space.id}'")
    return space


def space_module(space_id: str) -> ModuleType:
    """The torch half of a space (its ``nn`` module), imported on first use."""
    entry = space_entry(space_id)
    if entry.nn is None:
        raise LookupError(f"space '{space_id}' registered no torch module (nn=)")
    return importlib.import_module(entry.nn)


def list_spaces() -> dict[str, str]:
    """Space id -> one-line description."""
    _load_builtin()
    return {k: e.description for k, e in sorted(_ENTRIES.items())}


def _load_builtin() -> None:
    for module in BUILTIN:
        importlib.import_module(module)
