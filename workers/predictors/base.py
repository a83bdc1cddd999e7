"""The predictor interface and its file format.

Targets: with ``target="auto"`` (default) values that all lie in [0, 1] (accuracies) are fitted
in logit space and mapped back with the sigmoid: subnets of a trained supernet crowd just below
the best accuracy, and the logit spreads that crowd out, which on the digits benchmark raised
the held-out Kendall tau of every model (ridge 0.50 -> 0.65 with 200 archs). Other targets are
fitted as they are (``"identity"``); ``"logit"`` forces the transform.

Every predictor maps archs of one space to a number: ``fit(archs, y)``, ``predict(archs,
return_std=False)``, ``save(path)``, ``load(path)``. Files are ``.npz`` holding arrays plus one
JSON string ``meta`` (kind, space spec, options), read with ``allow_pickle=False``: nothing
executable is ever unpickled.
"""

from __future__ import annotations

import json
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from search_spaces import get_space
from search_spaces.base import SearchSpace
from workers.predictors.features import Featurizer

Archs = Sequence[Mapping[str, int]]


TARGETS = ("auto", "identity", "logit")


class PredictorError(ValueError):
    pass


def _logit(t: np.ndarray) -> np.ndarray:
    # Clipped so that a perfect (or zero) accuracy stays finite.
    c = np.clip(t, 1e-4, 1 - 1e-4)
    return np.asarray(np.log(c / (1 - c)))


class Predictor(ABC):
    kind: ClassVar[str] = ""

    def __init__(
        self, space: SearchSpace, *, encoding: str = "onehot", seed: int = 0, target: str = "auto"
    ):
        if target not in TARGETS:
            raise PredictorError(f"target transform {target!r} is not known; use one of {TARGETS}")
        self.target = target
        self.logit = target == "logit"
        self.space = space
        self.encoding = encoding
        self.seed = int(seed)
        self.featurize = Featurizer(space, encoding)
        self.y_mean = 0.0
        self.y_std = 1.0
        self.fitted = False

    # ----- interface --------------------------------------------------------------------------
    def fit(self, archs: Archs, y: Sequence[float] | np.ndarray) -> Predictor:
        t = np.asarray(y, dtype=float).reshape(-1)
        if len(archs) != t.size:
            raise PredictorError(f"fit got {len(archs)} archs but {t.size} targets")
        if t.size < 2:
            raise PredictorError(f"fit needs at least 2 archs, got {t.size}")
        if not np.all(np.isfinite(t)):
            raise PredictorError("fit targets contain NaN or infinite values")
        if self.target == "auto":
            self.logit = bool(np.all((t >= 0) & (t <= 1)))
        if self.logit:
            if np.any((t < 0) | (t > 1)):
                raise PredictorError("target='logit' needs values in [0, 1]")
            t = _logit(t)
        self.y_mean = float(t.mean())
        self.y_std = float(t.std()) or 1.0
        self._fit(self.featurize(archs), (t - self.y_mean) / self.y_std)
        self.fitted = True
        return self

    def predict(
        self, archs: Archs, return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predictions (and, with ``return_std``, a standard deviation per arch; zeros for
        models without an uncertainty estimate)."""
        if not self.fitted:
            raise PredictorError(f"{self.kind} predictor is not fitted")
        mean, std = self._predict(self.featurize(archs))
        mean = mean * self.y_std + self.y_mean
        std = std * self.y_std
        if self.logit:
            mean = 1.0 / (1.0 + np.exp(-mean))
            std = std * mean * (1.0 - mean)  # delta method through the sigmoid
        if return_std:
            return mean, std
        return mean

    def save(self, path: str | Path) -> Path:
        if not self.fitted:
            raise PredictorError(f"{self.kind} predictor is not fitted; nothing to save")
        meta = {
            "kind": self.kind,
            "space": self.space.spec(),
            "encoding": self.encoding,
            "seed": self.seed,
            "y_mean": self.y_mean,
            "y_std": self.y_std,
            "target": self.target,
            "logit": self.logit,
            "options": self._options(),
        }
        arrays = {k: np.asarray(v) for k, v in self._arrays().items()}
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".npz")
        os.close(fd)
        savez: Any = np.savez  # typed stubs reject ** of arrays next to allow_pickle
        with open(tmp, "wb") as fh:
            savez(fh, meta=np.asarray(json.dumps(meta)), **arrays)
        os.replace(tmp, p)
        return p

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        return load_predictor(path)

    # ----- for subclasses ---------------------------------------------------------------------
    @abstractmethod
    def _fit(self, x: np.ndarray, y: np.ndarray) -> None: ...

    @abstractmethod
    def _predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    @abstractmethod
    def _arrays(self) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None: ...

    def _options(self) -> dict[str, Any]:
        return {}


_KINDS: dict[str, type[Predictor]] = {}


def register(cls: type[Predictor]) -> type[Predictor]:
    _KINDS[cls.kind] = cls
    return cls


def _load_builtin() -> None:
    # The built-in kinds register themselves when their modules are imported. Imported here,
    # not at the top: the implementations import this module, so the registry must not import
    # them while it loads (the same rule as the dataset and space registries).
    from workers.latency import regressor  # noqa: F401
    from workers.predictors import linear, mlp  # noqa: F401


def predictor_kinds() -> list[str]:
    _load_builtin()
    return sorted(_KINDS)


def make_predictor(kind: str, space: SearchSpace, **options: Any) -> Predictor:
    _load_builtin()
    if kind not in _KINDS:
        raise PredictorError(f"unknown predictor '{kind}'; known: {predictor_kinds()}")
    return _KINDS[kind](space, **options)


def load_predictor(path: str | Path) -> Predictor:
    p = Path(path)
    if not p.is_file():
        raise PredictorError(f"predictor file {p} does not exist")
    with np.load(p, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        arrays = {k: data[k] for k in data.files if k != "meta"}
    kind = meta.get("kind")
    _load_builtin()
    if kind not in _KINDS:
        raise PredictorError(f"{p}: unknown predictor kind {kind!r}; known: {predictor_kinds()}")
    space = get_space(**meta["space"])
    model = _KINDS[kind](
        space,
        encoding=meta["encoding"],
        seed=meta["seed"],
        target=meta.get("target", "identity"),
        **meta["options"],
    )
    model.y_mean, model.y_std = float(meta["y_mean"]), float(meta["y_std"])
    model.logit = bool(meta.get("logit", False))
    model._restore(arrays)
    model.fitted = True
    return model
