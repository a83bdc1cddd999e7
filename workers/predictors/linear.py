"""Baselines: ridge regression and a Gaussian process (RBF kernel).

Both are fitted with scikit-learn and stored as plain arrays; prediction is re-implemented
here in numpy from those arrays, so a loaded file needs nothing but numpy.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.linear_model import RidgeCV

from search_spaces.base import SearchSpace
from workers.predictors.base import Predictor, register


@register
class RidgePredictor(Predictor):
    """Ridge with the penalty chosen by efficient leave-one-out over a log grid."""

    kind = "ridge"

    def __init__(self, space: SearchSpace, **kw: Any):
        super().__init__(space, **kw)
        self.coef = np.zeros(0)
        self.intercept = 0.0

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        model = RidgeCV(alphas=np.logspace(-6, 3, 19)).fit(x, y)
        self.coef = np.asarray(model.coef_, dtype=float)
        self.intercept = float(model.intercept_)

    def _predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = x @ self.coef + self.intercept
        return mean, np.zeros_like(mean)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef, "intercept": np.asarray(self.intercept)}

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.coef = np.asarray(arrays["coef"], dtype=float)
        self.intercept = float(arrays["intercept"])


@register
class GPPredictor(Predictor):
    """Gaussian process, kernel c * RBF(l) + noise, hyperparameters by marginal likelihood."""

    kind = "gp"

    def __init__(self, space: SearchSpace, **kw: Any):
        super().__init__(space, **kw)
        self.x_train = np.zeros((0, 0))
        self.alpha = np.zeros(0)
        self.chol = np.zeros((0, 0))
        self.hyper = np.zeros(3)  # constant, length scale, noise

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        kernel = ConstantKernel(1.0, (1e-2, 1e2)) * RBF(
            np.sqrt(x.shape[1]), (1e-1, 1e3)
        ) + WhiteKernel(1e-1, (1e-5, 1.0))
        with warnings.catch_warnings():
            # Hyperparameters at a bound (e.g. almost no noise) are a fine outcome here.
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp = GaussianProcessRegressor(
                kernel, normalize_y=False, n_restarts_optimizer=1, random_state=self.seed
            ).fit(x, y)
        k = gp.kernel_
        self.hyper = np.asarray(
            [k.k1.k1.constant_value, k.k1.k2.length_scale, k.k2.noise_level], dtype=float
        )
        self.x_train = np.asarray(x, dtype=float)
        self.alpha = np.asarray(gp.alpha_, dtype=float).reshape(-1)
        self.chol = np.asarray(gp.L_, dtype=float)

    def _kernel(self, x: np.ndarray) -> np.ndarray:
        c, ls, _ = self.hyper
        d2 = np.sum(x**2, 1)[:, None] + np.sum(self.x_train**2, 1)[None, :] - 2 * x @ self.x_train.T
        return np.asarray(c * np.exp(-0.5 * np.maximum(d2, 0.0) / ls**2))

    def _predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ks = self._kernel(x)
        mean = ks @ self.alpha
        v = solve_triangular(self.chol, ks.T, lower=True)
        var = self.hyper[0] - np.sum(v**2, axis=0)
        return mean, np.sqrt(np.maximum(var, 0.0))

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "x_train": self.x_train,
            "alpha": self.alpha,
            "chol": self.chol,
            "hyper": self.hyper,
        }

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.x_train = np.asarray(arrays["x_train"], dtype=float)
        self.alpha = np.asarray(arrays["alpha"], dtype=float)
        self.chol = np.asarray(arrays["chol"], dtype=float)
        self.hyper = np.asarray(arrays["hyper"], dtype=float)
