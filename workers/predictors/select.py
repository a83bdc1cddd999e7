"""Choosing the accuracy predictor by held-out error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from search_spaces.base import SearchSpace
from workers.predictors.base import Archs, Predictor, PredictorError, make_predictor
from workers.predictors.quality import quality_report

METRICS = {"mae": False, "mape": False, "kendall_tau": True, "spearman_rho": True}


def select_accuracy_predictor(
    space: SearchSpace,
    archs: Archs,
    y: Sequence[float] | np.ndarray,
    *,
    candidates: Sequence[str] = ("mlp", "ridge", "gp"),
    holdout: float = 0.25,
    metric: str = "mae",
    seed: int = 0,
    options: dict[str, dict[str, Any]] | None = None,
) -> tuple[Predictor, dict[str, dict[str, float]]]:
    """Fit each candidate on a seeded split, score it on the held-out part, refit the best on
    everything. Returns the refitted predictor and the held-out report of every candidate."""
    if metric not in METRICS:
        raise PredictorError(
            f"selection metric {metric!r} is not known; use one of {list(METRICS)}"
        )
    if not 0 < holdout < 1:
        raise PredictorError(f"holdout must be in (0, 1), got {holdout}")
    t = np.asarray(y, dtype=float)
    n = len(archs)
    n_val = max(2, round(n * holdout))
    if n - n_val < 2:
        raise PredictorError(f"need at least {n_val + 2} archs to select a predictor, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    val, train = order[:n_val], order[n_val:]
    opts = options or {}
    reports: dict[str, dict[str, float]] = {}
    for name in candidates:
        model = make_predictor(name, space, seed=seed, **opts.get(name, {}))
        model.fit([archs[i] for i in train], t[train])
        pred = np.asarray(model.predict([archs[i] for i in val]))
        reports[name] = quality_report(t[val], pred)
    higher = METRICS[metric]
    best = (max if higher else min)(reports, key=lambda k: reports[k][metric])
    chosen = make_predictor(best, space, seed=seed, **opts.get(best, {})).fit(archs, t)
    return chosen, reports
