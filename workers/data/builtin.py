"""Datasets that need no user file: scikit-learn's handwritten digits and a seeded synthetic set.

Their catalog entries (``nas_service.catalog.datasets``) name these loaders."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workers.data.base import DatasetError, DatasetSplits, make_splits


def load_digits_dataset(
    *, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.2
) -> DatasetSplits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are 0..16; scale to [0, 1] before per-channel normalisation.
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None, :, :]
    y = np.asarray(bunch.target, dtype=np.int64)
    return make_splits(
        "digits",
        x,
        y,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        info={"source": "sklearn.datasets.load_digits", "classes": list(range(10))},
    )


def load_synthetic(
    *,
    seed: int = 0,
    n: int = 600,
    shape: Sequence[int] = (1, 8, 8),
    classes: int = 4,
    noise: float = 0.6,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
) -> DatasetSplits:
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
        protos = smooth
        protos = protos / (protos.std(axis=(1, 2, 3), keepdims=True) + 1e-6)
    y = np.arange(n) % classes
    rng.shuffle(y)
    x = protos[y] + noise * rng.normal(size=(n, *shape)).astype(np.float32)
    x = x + 0.3 * rng.normal(size=(n,) + (1,) * len(shape)).astype(np.float32)
    return make_splits(
        "synthetic",
        x.astype(np.float32),
        y.astype(np.int64),
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        info={"n": n, "shape": list(shape), "classes": classes, "noise": noise},
    )
