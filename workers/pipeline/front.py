"""Objectives of a job and the Pareto front of its stored candidates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from nas_service.domain import JobSpec
from workers.pipeline.sink import CandidateRecord
from workers.search.objectives import Objective, all_constraints, violation
from workers.search.pareto import hypervolume, pareto_mask


def job_objectives(spec: JobSpec) -> list[Objective]:
    return [
        Objective(o.name, "max" if o.direction == "max" else "min", o.bound)
        for o in spec.search.objectives
    ]


def needs_latency(spec: JobSpec) -> bool:
    return any(o.name == "latency_ms" for o in spec.search.objectives)


def is_feasible(metrics: Mapping[str, float], objectives: Sequence[Objective]) -> bool:
    constraints = all_constraints(objectives)
    return not constraints or violation(metrics, constraints) == 0.0


def front_of(
    rows: Sequence[CandidateRecord],
    objectives: Sequence[Objective],
    ref: Sequence[float],
    *,
    predicted: bool = False,
) -> tuple[list[CandidateRecord], float]:
    """The non-dominated feasible rows (one per genotype) and their hypervolume.

    With ``predicted`` the values before re-measurement are used where a row has them.
    """
    values: list[list[float]] = []
    kept: list[CandidateRecord] = []
    seen: set[str] = set()
    for r in rows:
        if r.genotype in seen:
            continue
        seen.add(r.genotype)
        m = {**r.metrics, **r.predicted} if predicted else r.metrics
        if not is_feasible(m, objectives):
            continue
        if any(m.get(o.name) is None for o in objectives):
            continue
        kept.append(r)
        values.append([float(m[o.name]) for o in objectives])
    if not kept:
        return [], 0.0
    dirs = [o.direction for o in objectives]
    arr = np.asarray(values, dtype=float)
    mask = pareto_mask(arr, dirs)
    front = [r for r, keep in zip(kept, mask, strict=True) if keep]
    hv = hypervolume(arr[mask], dirs, ref)
    return front, float(hv)
