"""Pareto utilities: non-dominated masks and sorting, crowding distance, hypervolume.

Values are ``(n, m)`` arrays with a direction per column (``"min"`` or ``"max"``); internally
every column is turned into one to minimise. Exact duplicates do not dominate each other, so
both copies of a non-dominated point are marked non-dominated (``unique=True`` keeps the first).

Hypervolume is exact for any number of objectives (slicing over the last objective down to the
2-D sweep). That is fast for the front sizes of a search (tens to a few hundred points in 2-3
objectives); it grows quickly beyond 4 objectives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from workers.search.objectives import Objective, ObjectiveError, to_minimisation


def _as_2d(values: np.ndarray | Sequence[Sequence[float]], m: int) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    return arr.reshape(0, m) if arr.size == 0 else arr


def _dominance(f: np.ndarray) -> np.ndarray:
    """D[i, j] is True when point i dominates point j (all <=, some <), for minimised f."""
    le = np.all(f[:, None, :] <= f[None, :, :], axis=2)
    lt = np.any(f[:, None, :] < f[None, :, :], axis=2)
    return le & lt


def pareto_mask(
    values: np.ndarray | Sequence[Sequence[float]],
    directions: Sequence[str],
    *,
    unique: bool = False,
) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``values``."""
    f = to_minimisation(_as_2d(values, len(directions)), directions)
    n = f.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    mask = np.ones(n, dtype=bool)
    # Chunked so that thousands of points do not need an n*n*m temporary at once.
    step = max(1, 2_000_000 // max(1, n * f.shape[1]))
    for lo in range(0, n, step):
        block = f[lo : lo + step]
        le = np.all(f[:, None, :] <= block[None, :, :], axis=2)
        lt = np.any(f[:, None, :] < block[None, :, :], axis=2)
        mask[lo : lo + step] = ~np.any(le & lt, axis=0)
    if unique:
        _, first = np.unique(f, axis=0, return_index=True)
        keep = np.zeros(n, dtype=bool)
        keep[first] = True
        mask &= keep
    return mask


def non_dominated_ranks(f_min: np.ndarray) -> np.ndarray:
    """Front index (0 = non-dominated) of each row of an already-minimised array."""
    n = f_min.shape[0]
    ranks = np.full(n, -1, dtype=int)
    if n == 0:
        return ranks
    dom = _dominance(f_min)
    count = dom.sum(axis=0)  # how many points dominate each point
    current = np.flatnonzero(count == 0)
    r = 0
    while current.size:
        ranks[current] = r
        count = count - dom[current].sum(axis=0)
        count[ranks >= 0] = -1
        current = np.flatnonzero(count == 0)
        r += 1
    return ranks


def constrained_ranks(f_min: np.ndarray, violations: np.ndarray) -> np.ndarray:
    """Constraint-domination ranks: feasible points by Pareto fronts, then every infeasible
    point behind them, ordered by total violation (equal violations share a rank)."""
    v = np.asarray(violations, dtype=float)
    ranks = np.empty(f_min.shape[0], dtype=int)
    feas = v <= 0
    ranks[feas] = non_dominated_ranks(f_min[feas])
    base = int(ranks[feas].max()) + 1 if feas.any() else 0
    if (~feas).any():
        _, inv = np.unique(v[~feas], return_inverse=True)
        ranks[~feas] = base + inv
    return ranks


def crowding_distance(f_min: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance within one front (boundary points get +inf)."""
    n, m = f_min.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(f_min[:, j], kind="stable")
        col = f_min[order, j]
        span = col[-1] - col[0]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            dist[order[1:-1]] += (col[2:] - col[:-2]) / span
    return dist


def _hv_min(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume of minimised points dominating ``ref``."""
    if points.shape[0] == 0:
        return 0.0
    m = points.shape[1]
    if m == 1:
        return float(ref[0] - points[:, 0].min())
    if m == 2:
        order = np.lexsort((points[:, 1], points[:, 0]))
        total, best_y = 0.0, ref[1]
        for x, y in points[order]:
            if y < best_y:
                total += (ref[0] - x) * (best_y - y)
                best_y = y
        return float(total)
    # Slice along the last objective: between consecutive levels the covered (m-1)-volume is
    # that of every point at or below the lower level.
    order = np.argsort(points[:, -1], kind="stable")
    pts = points[order]
    levels = np.append(pts[:, -1], ref[-1])
    total = 0.0
    for i in range(pts.shape[0]):
        height = levels[i + 1] - levels[i]
        if height <= 0:
            continue
        sub = pts[: i + 1, :-1]
        sub = sub[pareto_mask(sub, ["min"] * (m - 1), unique=True)]
        total += height * _hv_min(sub, ref[:-1])
    return float(total)


def hypervolume(
    points: np.ndarray | Sequence[Sequence[float]],
    directions: Sequence[str],
    ref: Sequence[float] | np.ndarray,
) -> float:
    """Volume dominated by ``points`` and bounded by the reference point ``ref``.

    Points that do not strictly improve on ``ref`` in every objective add nothing.
    """
    r = to_minimisation(np.asarray(ref, dtype=float).reshape(1, -1), directions)[0]
    f = to_minimisation(_as_2d(points, len(directions)), directions)
    if not np.all(np.isfinite(r)):
        raise ObjectiveError(f"reference point must be finite, got {list(ref)}")
    f = f[np.all(np.isfinite(f), axis=1) & np.all(f < r, axis=1)]
    if f.shape[0] == 0:
        return 0.0
    f = f[pareto_mask(f, ["min"] * f.shape[1], unique=True)]
    return _hv_min(f, r)


def reference_point(
    objectives: Sequence[Objective],
    space: Any,
    *,
    latency_fn: Callable[[Mapping[str, int]], float] | None = None,
    overrides: Mapping[str, float] | None = None,
    margin: float = 1.1,
    worst_loss: float | None = None,
) -> list[float]:
    """A reference point fixed for a whole job, so hypervolumes of its searchers compare.

    Choice: accuracy 0; an analytic cost (FLOPs, params, ...) of the space's largest arch times
    ``margin``; latency of
    the largest arch (``latency_fn``, e.g. a predictor) times ``margin``; loss ``worst_loss``
    (e.g. ln(num_classes) * margin, the loss of a uniform guess). ``overrides`` wins over all.
    """
    from nas_service.catalog import objectives as catalog_objectives

    over = dict(overrides or {})
    analytic = catalog_objectives.analytic()
    big = space.max_arch()
    out: list[float] = []
    for o in objectives:
        if o.name in over:
            out.append(float(over[o.name]))
        elif o.name == "accuracy":
            out.append(0.0 if o.direction == "max" else 1.0)
        elif o.name in analytic:
            # The largest network's value (with a margin) for a cost; 0 for a benefit.
            out.append(
                float(analytic[o.name](space, big)) * margin if o.direction == "min" else 0.0
            )
        elif o.name == "latency_ms":
            if latency_fn is None:
                raise ObjectiveError(
                    "reference point for 'latency_ms' needs latency_fn (a latency predictor) "
                    "or an override"
                )
            out.append(float(latency_fn(big)) * margin)
        elif o.name == "loss" and worst_loss is not None:
            out.append(float(worst_loss))
        else:
            raise ObjectiveError(
                f"no default reference value for objective '{o.name}'; pass overrides"
            )
    return out
