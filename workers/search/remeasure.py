"""Re-measuring the final Pareto front for real.

Search evaluations may be predictions (latency from a lookup table, accuracy from a predictor).
``remeasure_front`` takes every candidate of a search, picks its Pareto front on the values the
search used (feasible candidates only, when there are any), measures those archs with ``measure``
(the real thing: evaluator accuracy, timed latency), marks them ``source="measured"`` and
recomputes the front on the measured values. The report keeps predicted next to measured per
point, which is how drift of a predictor shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search_spaces.base import Arch, SearchSpace
from workers.search.objectives import (
    Constraint,
    Objective,
    all_constraints,
    objective_matrix,
    violation,
)
from workers.search.pareto import pareto_mask

MeasureFn = Callable[[Sequence[Arch]], Sequence[Mapping[str, float]]]


@dataclass
class FrontPoint:
    arch: Arch
    predicted: dict[str, float]
    measured: dict[str, float]
    feasible: bool
    on_front: bool  # on the front recomputed from measured values
    source: str = "measured"

    def to_json(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "predicted": self.predicted,
            "measured": self.measured,
            "feasible": self.feasible,
            "on_front": self.on_front,
            "source": self.source,
        }


@dataclass
class FrontReport:
    objectives: list[Objective]
    points: list[FrontPoint] = field(default_factory=list)

    def front(self) -> list[FrontPoint]:
        return [p for p in self.points if p.on_front]

    def drift(self) -> dict[str, dict[str, float]]:
        """Per objective: mean and max relative gap |predicted - measured| / |measured|."""
        out = {}
        for o in self.objectives:
            gaps = [
                abs(p.predicted[o.name] - p.measured[o.name]) / max(abs(p.measured[o.name]), 1e-12)
                for p in self.points
                if o.name in p.predicted and o.name in p.measured
            ]
            if gaps:
                out[o.name] = {"mean_rel": float(np.mean(gaps)), "max_rel": float(np.max(gaps))}
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "objectives": [str(o) for o in self.objectives],
            "points": [p.to_json() for p in self.points],
            "drift": self.drift(),
        }


def front_indices(
    evaluations: Sequence[Mapping[str, float]],
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint] = (),
) -> list[int]:
    """Indices of the Pareto front; among feasible candidates when there is any."""
    if not evaluations:
        return []
    cons = all_constraints(objectives, constraints)
    feas = np.asarray([violation(e, cons) <= 0 for e in evaluations])
    pool = np.flatnonzero(feas) if feas.any() else np.arange(len(evaluations))
    vals = objective_matrix([evaluations[int(i)] for i in pool], objectives)
    mask = pareto_mask(vals, [o.direction for o in objectives], unique=True)
    return [int(i) for i in pool[mask]]


def remeasure_front(
    space: SearchSpace,
    objectives: Sequence[Objective],
    candidates: Sequence[tuple[Mapping[str, int], Mapping[str, float]]],
    measure: MeasureFn,
    *,
    constraints: Sequence[Constraint] = (),
) -> FrontReport:
    idx = front_indices([e for _, e in candidates], objectives, constraints)
    archs = [space.canonical(candidates[i][0]) for i in idx]
    measured = [dict(m) for m in measure(archs)] if archs else []
    if len(measured) != len(archs):
        raise ValueError(f"measure returned {len(measured)} results for {len(archs)} archs")
    merged = [{**candidates[i][1], **m} for i, m in zip(idx, measured, strict=True)]
    on_front = set(front_indices(merged, objectives, constraints))
    cons = all_constraints(objectives, constraints)
    report = FrontReport(list(objectives))
    for k, (i, arch) in enumerate(zip(idx, archs, strict=True)):
        report.points.append(
            FrontPoint(
                arch=arch,
                predicted={key: float(v) for key, v in candidates[i][1].items()},
                measured={key: float(v) for key, v in merged[k].items()},
                feasible=violation(merged[k], cons) <= 0,
                on_front=k in on_front,
            )
        )
    return report


def format_table(report: FrontReport, space: SearchSpace) -> str:
    """Plain-text table: one row per re-measured point, predicted / measured per objective."""
    heads = ["#", "arch"]
    for o in report.objectives:
        heads += [f"{o.name} pred", f"{o.name} meas"]
    heads += ["feasible", "front"]
    rows = []
    order = sorted(
        range(len(report.points)),
        key=lambda i: (
            report.points[i].measured.get(report.objectives[0].name, 0.0)
            * report.objectives[0].sign
        ),
    )
    for n, i in enumerate(order, 1):
        p = report.points[i]
        row = [str(n), space.short(p.arch)]
        for o in report.objectives:
            row += [_fmt(p.predicted.get(o.name)), _fmt(p.measured.get(o.name))]
        row += ["yes" if p.feasible else "no", "*" if p.on_front else ""]
        rows.append(row)
    widths = [max(len(r[c]) for r in [heads, *rows]) for c in range(len(heads))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1e4:
        return f"{v:.3g}"
    return f"{v:.4g}"
