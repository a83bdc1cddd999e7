"""Objectives: the metrics a job optimises or bounds (``search.objectives[].name``).

``direction`` is the only one that makes sense (accuracy up, costs down); ``bound`` says what a
bound may be (``fraction``: in (0, 1]; ``positive``: > 0); ``unit`` and ``label`` are for people.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from nas_service.catalog.registry import CATALOG, Entry, resolve

KIND = "objective"


def objective(
    name: str,
    summary: str,
    *,
    direction: str,
    bound: str,
    unit: str,
    label: str,
    analytic: str | None = None,
) -> Entry:
    """``analytic``: the ``"module:function"`` computing the metric from ``(space, arch)``
    (torch-free, e.g. in ``search_spaces.metrics``); None for a metric that is measured
    (accuracy by the supernet, latency on the device)."""
    return Entry(
        KIND,
        name,
        summary,
        impl=analytic,
        info={
            "direction": direction,
            "bound": bound,
            "unit": unit,
            "label": label,
            "analytic": analytic is not None,
        },
    )


ENTRIES = [
    objective(
        "accuracy",
        "top-1 accuracy on the validation split (held-out test accuracy is reported beside it)",
        direction="max",
        bound="fraction",
        unit="",
        label="accuracy (val)",
    ),
    objective(
        "latency_ms",
        "latency of one batch on the job's device: predicted in the search, measured on the front",
        direction="min",
        bound="positive",
        unit="ms",
        label="latency (ms)",
    ),
    objective(
        "flops",
        "multiply-accumulates of one forward pass (analytic, exact)",
        direction="min",
        bound="positive",
        unit="MACs",
        label="FLOPs (MACs)",
        analytic="search_spaces.metrics:flops",
    ),
    objective(
        "params",
        "parameters of the extracted subnet (analytic, exact)",
        direction="min",
        bound="positive",
        unit="",
        label="parameters",
        analytic="search_spaces.metrics:params",
    ),
]


def names() -> list[str]:
    return CATALOG.names(KIND)


def analytic() -> dict[str, Callable[[Any, Mapping[str, int]], float]]:
    """Name -> function of every analytic objective (``(space, arch) -> value``)."""
    return {e.name: resolve(e) for e in CATALOG.entries(KIND) if e.impl}


def unit(name: str) -> str:
    return str(CATALOG.get(KIND, name).info["unit"])


def direction(name: str) -> str:
    return str(CATALOG.get(KIND, name).info["direction"])


def bound_error(name: str, bound: float) -> str | None:
    """Why ``bound`` cannot bound ``name``, or None when it can."""
    if not math.isfinite(bound):
        return "bound must be a finite number"
    rule = CATALOG.get(KIND, name).info["bound"]
    if rule == "fraction" and not 0.0 < bound <= 1.0:
        return f"{name} bound is a fraction in (0, 1], got {bound:g}"
    if rule == "positive" and bound <= 0:
        return f"{name} bound must be positive, got {bound:g}"
    return None
