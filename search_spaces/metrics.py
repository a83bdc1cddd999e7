"""Analytic metrics: values computed from an architecture alone, exactly, without a network.

A catalog objective whose ``impl`` names one of these (``"search_spaces.metrics:flops"``) is
*analytic*: the search computes it for every candidate, the API judges its bounds against the
fitted space's smallest network, the searchers get it as a cheap estimate. A new analytic
objective (an energy model, a quantised size) is a function ``(space, arch) -> float`` here or
in its own module, plus its catalog entry. Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping

from search_spaces.base import SearchSpace


def flops(space: SearchSpace, arch: Mapping[str, int]) -> float:
    return float(space.flops(arch))


def params(space: SearchSpace, arch: Mapping[str, int]) -> float:
    return float(space.params(arch))
