"""What a finished job found, in words the user sees: a front per device, or why there is none.

A job whose bounds no measured subnet meets must not end as a silent green empty front. The
outcome names each device without a front, the bound that stopped it (for a ``<=`` bound the
smallest network's measured value, which no subnet of the space can beat by much; for a ``>=``
bound the best value measured) and the closest candidates by total violation, so the user can
relax the bound knowing what is reachable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nas_service.catalog import objectives
from workers.pipeline.sink import CandidateRecord
from workers.search.objectives import Constraint, Objective, all_constraints, violation

FRONT = "front"
NO_FEASIBLE = "no_feasible_subnet"
CLOSEST = 5


def _fmt(name: str, v: float) -> str:
    """A value with its catalog unit; counts (analytic costs) exactly, with separators."""
    unit = objectives.unit(name) if name in objectives.names() else ""
    text = f"{round(v):,}" if name in objectives.analytic() else f"{v:.4g}"
    return f"{text} {unit}" if unit else text


def _why(
    c: Constraint, measured: Sequence[CandidateRecord], smallest: CandidateRecord | None
) -> str | None:
    """Why ``c`` alone is not met by any measured candidate, or None when one meets it."""
    values = [r.metrics[c.name] for r in measured if c.name in r.metrics]
    if not values:
        return None
    if c.op == "<=":
        if min(values) <= c.value:
            return None
        if smallest is not None and c.name in smallest.metrics:
            got = smallest.metrics[c.name]
            return (
                f"the smallest network measures {_fmt(c.name, got)}, above the "
                f"{_fmt(c.name, c.value)} bound ({c})"
            )
        return f"the lowest {c.name} measured is {_fmt(c.name, min(values))}, above ({c})"
    if max(values) >= c.value:
        return None
    return f"the best {c.name} measured is {_fmt(c.name, max(values))}, below the bound ({c})"


def _closest(rows: Sequence[CandidateRecord], constraints: Sequence[Constraint]) -> list[Any]:
    scored = []
    for r in rows:
        try:
            v = violation(r.metrics, constraints)
        except ValueError:
            continue  # a row without a bounded metric (never measured) cannot be ranked
        scored.append((v, r.id or 0, r))
    scored.sort(key=lambda t: (t[0], t[1]))
    return [
        {
            "id": r.id,
            "arch_short": r.arch_short,
            "source": r.source,
            "violation": round(v, 6),
            "metrics": {k: r.metrics[k] for k in sorted(r.metrics)},
        }
        for v, _, r in scored[:CLOSEST]
    ]


def device_outcome(
    device: str,
    rows: Sequence[CandidateRecord],
    front: Sequence[CandidateRecord],
    objectives: Sequence[Objective],
    smallest_genotype: str,
) -> dict[str, Any]:
    """One device's part of the outcome; ``rows`` are all its stored candidates."""
    if front:
        return {"code": FRONT, "front": len(front), "evaluated": len(rows)}
    constraints = all_constraints(objectives)
    measured = [r for r in rows if r.source == "measured"]
    smallest = next((r for r in measured if r.genotype == smallest_genotype), None)
    reasons = [w for c in constraints if (w := _why(c, measured, smallest)) is not None]
    if not reasons:
        reasons = [
            "each bound is met by some measured subnet, but none meets "
            f"{' and '.join(str(c) for c in constraints)} at once"
        ]
    return {
        "code": NO_FEASIBLE,
        "front": 0,
        "evaluated": len(rows),
        "measured": len(measured),
        "reasons": reasons,
        "closest": _closest(measured or rows, constraints),
    }


def job_outcome(devices: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The job's outcome from its devices' parts, with one message line."""
    empty = [d for d, o in devices.items() if o["code"] == NO_FEASIBLE]
    if not empty:
        sizes = ", ".join(f"{o['front']} on {d}" for d, o in devices.items())
        return {"code": FRONT, "message": f"Pareto front: {sizes}", "devices": dict(devices)}
    parts = [f"on {d}: {'; '.join(devices[d]['reasons'])}" for d in empty]
    return {
        "code": NO_FEASIBLE,
        "message": "no feasible subnet " + " | ".join(parts),
        "devices": dict(devices),
    }
