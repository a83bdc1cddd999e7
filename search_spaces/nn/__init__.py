"""Supernets (torch): ``build_supernet(space)``, ``build_static(spec_or_space, arch)``,
``latency_units(space, arch)``, ``covering_archs(space)``, ``count_macs(module, input_shape)``.

Each space names its torch module at registration (``register_space(..., nn="...")``); these
functions dispatch to that module, so adding a space edits nothing here. The module provides:

- ``build_supernet(space) -> Supernet``: the weight-sharing network, largest arch active;
- ``build_static(space, arch) -> nn.Module``: the subnet of ``arch`` from JSON alone, with the
  same module tree and state_dict keys as ``Supernet.extract(arch)``;
- ``latency_units(space, arch) -> list[Unit]`` and ``covering_archs(space)`` (optional): how a
  network splits into timeable units and archs that together contain every distinct unit, for
  latency lookup tables.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, cast

from torch import nn

from search_spaces.base import SearchSpace
from search_spaces.nn.base import Supernet, Unit, count_macs
from search_spaces.nn.preprocess import load_subnet, with_preprocessing
from search_spaces.registry import get_space, space_module


def _as_space(spec_or_space: SearchSpace | Mapping[str, Any]) -> SearchSpace:
    if isinstance(spec_or_space, SearchSpace):
        return spec_or_space
    spec = dict(spec_or_space)
    if "id" not in spec:
        raise ValueError(f"a space spec needs an 'id' key, got keys {sorted(spec)}")
    return get_space(**spec)


def _hook(space: SearchSpace, name: str, what: str) -> Any:
    try:
        module = space_module(space.id)
    except LookupError as e:
        raise ValueError(f"no {what} for space '{space.id}': {e}") from None
    fn = getattr(module, name, None)
    if fn is None:
        raise ValueError(f"no {what} for space '{space.id}' ({module.__name__} has no {name})")
    return fn


def build_supernet(spec_or_space: SearchSpace | Mapping[str, Any]) -> Supernet:
    """The weight-sharing supernet of a space (largest arch active)."""
    space = _as_space(spec_or_space)
    return cast(Supernet, _hook(space, "build_supernet", "supernet")(space))


def build_static(
    spec_or_space: SearchSpace | Mapping[str, Any], arch: Mapping[str, int]
) -> nn.Module:
    """The static subnet of ``arch`` from JSON alone (fresh weights): the same module tree and
    state_dict keys as ``Supernet.extract(arch)``, so exported weights load into it."""
    space = _as_space(spec_or_space)
    return cast(nn.Module, _hook(space, "build_static", "static builder")(space, arch))


def latency_units(space: SearchSpace, arch: Mapping[str, int]) -> list[Unit]:
    """The timeable units of ``arch``'s network, in execution order."""
    return list(_hook(space, "latency_units", "latency lookup table layout")(space, arch))


def covering_archs(space: SearchSpace) -> Iterator[dict[str, int]]:
    """Archs that together contain every distinct latency unit of the space."""
    yield from _hook(space, "covering_archs", "latency lookup table layout")(space)


__all__ = [
    "Supernet",
    "Unit",
    "build_static",
    "build_supernet",
    "count_macs",
    "covering_archs",
    "latency_units",
    "load_subnet",
    "with_preprocessing",
]
