"""Quality report of a predictor on held-out archs: rank agreement and error."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def quality_report(
    y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """Kendall tau, Spearman rho, MAE, MAPE (in %), share within +-10%, and n."""
    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} must be equal 1-D shapes")
    n = int(t.size)
    if n < 2:
        raise ValueError(f"a quality report needs at least 2 held-out archs, got {n}")
    tau = float(stats.kendalltau(t, p).statistic)
    rho = float(stats.spearmanr(t, p).statistic)
    rel = np.abs(p - t) / np.maximum(np.abs(t), 1e-12)
    return {
        "kendall_tau": tau if np.isfinite(tau) else 0.0,
        "spearman_rho": rho if np.isfinite(rho) else 0.0,
        "mae": float(np.mean(np.abs(p - t))),
        "mape": float(100.0 * np.mean(rel)),
        "within_10pct": float(np.mean(rel <= 0.10)),
        "n": float(n),
    }
