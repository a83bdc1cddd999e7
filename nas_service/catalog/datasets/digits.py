"""scikit-learn's handwritten digits: 1,797 real 8x8 grayscale images of 10 classes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nas_service.catalog.datasets.base import Arrays, RawLayout, SplitOptions, dataset_entry
from search_spaces import DataShape


def shape(options: Mapping[str, Any], info: Mapping[str, Any]) -> DataShape:
    return DataShape.of((1, 8, 8), 10)


def read(*, seed: int = 0) -> Arrays:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are 0..16: scaled to [0, 1].
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None, :, :]
    y = np.asarray(bunch.target, dtype=np.int64)
    info = {"source": "sklearn.datasets.load_digits", "classes": list(range(10))}
    # The user's digits are sklearn's images: (N, 8, 8) floats 0..16.
    raw = RawLayout("NHW", str(bunch.images.dtype), 16.0)
    return Arrays("digits", x, y, raw, info=info)


ENTRY = dataset_entry(
    "digits",
    "scikit-learn handwritten digits: 1797 real 8x8 grayscale images, 10 classes",
    SplitOptions,
    f"{__name__}:read",
    shape,
    builtin=True,
)
