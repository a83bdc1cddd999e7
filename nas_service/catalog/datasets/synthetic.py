"""A seeded synthetic set of any shape: class prototypes plus noise (for tests and trials)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from nas_service.catalog.datasets.base import (
    Arrays,
    DatasetError,
    RawLayout,
    SplitOptions,
    dataset_entry,
)
from search_spaces import DataShape

DEFAULT_N = 600
DEFAULT_SHAPE = (1, 8, 8)
DEFAULT_CLASSES = 4
# At most this many input values (n times the size of one sample): 50 M float32, 200 MB.
MAX_VALUES = 50_000_000


class Options(SplitOptions):
    n: int | None = Field(default=None, ge=8, le=1_000_000)
    shape: list[int] | None = Field(default=None, min_length=1, max_length=3)
    classes: int | None = Field(default=None, ge=2, le=1000)
    noise: float | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _sane_size(self) -> Options:
        if self.shape is not None:
            if len(self.shape) == 2 or any(not 1 <= s <= 1024 for s in self.shape):
                raise ValueError(
                    f"shape {self.shape} must be [D] or [C, H, W] with sides in 1..1024"
                )
            values = (self.n or DEFAULT_N) * math.prod(self.shape)
            if values > MAX_VALUES:
                raise ValueError(
                    f"n x shape is {values:,} values; at most {MAX_VALUES:,} are allowed"
                )
        return self


def shape(options: Mapping[str, Any], info: Mapping[str, Any]) -> DataShape:
    return DataShape.of(
        options.get("shape") or DEFAULT_SHAPE, int(options.get("classes") or DEFAULT_CLASSES)
    )


def read(
    *,
    seed: int = 0,
    n: int = DEFAULT_N,
    shape: Sequence[int] = DEFAULT_SHAPE,
    classes: int = DEFAULT_CLASSES,
    noise: float = 0.6,
) -> Arrays:
    """Each class is a random smooth prototype; samples are the prototype plus Gaussian noise
    and a random brightness shift, so a network must learn the pattern, not a single pixel."""
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (1, 3) or any(s < 1 for s in shape):
        raise DatasetError(f"synthetic: shape={list(shape)} must be (D,) or (C, H, W), positive")
    if classes < 2:
        raise DatasetError(f"synthetic: classes={classes}; at least 2 are needed")
    if n < 2 * classes:
        raise DatasetError(
            f"synthetic: n={n} is too small for {classes} classes (need >= {2 * classes})"
        )
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(classes, *shape)).astype(np.float32)
    if len(shape) == 3:
        # Smooth each prototype with a 3x3 box filter so neighbouring pixels correlate.
        padded = np.pad(protos, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
        h, w = shape[1], shape[2]
        smooth = np.zeros_like(protos)
        for i in range(3):
            for j in range(3):
                smooth += padded[:, :, i : i + h, j : j + w] / 9.0
        protos = smooth / (smooth.std(axis=(1, 2, 3), keepdims=True) + 1e-6)
    y = np.arange(n) % classes
    rng.shuffle(y)
    x = protos[y] + noise * rng.normal(size=(n, *shape)).astype(np.float32)
    x = x + 0.3 * rng.normal(size=(n,) + (1,) * len(shape)).astype(np.float32)
    info = {"n": n, "shape": list(shape), "classes": classes, "noise": noise}
    raw = RawLayout("ND" if len(shape) == 1 else "NCHW", "float32")
    return Arrays("synthetic", x.astype(np.float32), y.astype(np.int64), raw, info=info)


ENTRY = dataset_entry(
    "synthetic",
    "seeded class prototypes plus noise; any shape (for tests and trials)",
    Options,
    f"{__name__}:read",
    shape,
    builtin=True,
)
