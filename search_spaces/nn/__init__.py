"""Supernets (torch): ``build_supernet(space)``, ``build_static(spec_or_space, arch)``,
``count_macs(module, input_shape)``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from search_spaces.base import SearchSpace
from search_spaces.mbv3 import MBV3Space
from search_spaces.mlp import MLPSpace
from search_spaces.nn.base import Supernet, count_macs
from search_spaces.nn.mlp import MLPSupernet, build_static_mlp
from search_spaces.registry import get_space


def _as_space(spec_or_space: SearchSpace | Mapping[str, Any]) -> SearchSpace:
    if isinstance(spec_or_space, SearchSpace):
        return spec_or_space
    spec = dict(spec_or_space)
    if "id" not in spec:
        raise ValueError(f"a space spec needs an 'id' key, got keys {sorted(spec)}")
    return get_space(**spec)


def build_supernet(spec_or_space: SearchSpace | Mapping[str, Any]) -> Supernet:
    """The weight-sharing supernet of a space (largest arch active)."""
    space = _as_space(spec_or_space)
    if isinstance(space, MLPSpace):
        return MLPSupernet(space)
    if isinstance(space, MBV3Space):
        from search_spaces.nn.mbv3 import MBV3Supernet

        return MBV3Supernet(space)
    raise ValueError(f"no supernet for space '{space.id}'")


def build_static(
    spec_or_space: SearchSpace | Mapping[str, Any], arch: Mapping[str, int]
) -> nn.Module:
    """The static subnet of ``arch`` from JSON alone (fresh weights): the same module tree and
    state_dict keys as ``Supernet.extract(arch)``, so exported weights load into it."""
    space = _as_space(spec_or_space)
    if isinstance(space, MLPSpace):
        return build_static_mlp(space, arch)
    if isinstance(space, MBV3Space):
        from search_spaces.nn.mbv3_static import build_static_mbv3

        return build_static_mbv3(space, arch)
    raise ValueError(f"no static builder for space '{space.id}'")


__all__ = ["Supernet", "build_static", "build_supernet", "count_macs"]
