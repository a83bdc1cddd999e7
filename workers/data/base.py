"""The dataset object every stage shares: seeded, disjoint train / validation / test splits."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

# A reader's or loader's error: the catalog's, so that one class crosses every layer.
from nas_service.catalog.datasets.base import DatasetError as DatasetError


@dataclass
class DatasetSplits:
    """In-memory splits. ``x`` is float32 (N, C, H, W) for images or (N, D) for tabular data;
    ``y`` is int64 class indices. Search and BN recalibration use train and val only."""

    name: str
    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    num_classes: int
    input_shape: tuple[int, ...]  # one sample, without the batch dimension
    info: dict[str, Any] = field(default_factory=dict)  # JSON-safe metadata
    # Row indices of each split into the loaded arrays (test: into the provided test arrays
    # when the format has its own), so a split can be traced back to the file. Kept out of
    # ``info`` because it grows with the dataset.
    indices: dict[str, np.ndarray] = field(default_factory=dict)

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        ds: TensorDataset = getattr(self, split)
        x, y = ds.tensors
        return x, y

    def sizes(self) -> dict[str, int]:
        return {s: len(getattr(self, s)) for s in ("train", "val", "test")}

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        seed: int,
        epoch: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of one epoch of ``split`` for one rank: a seeded order (the same for a
        given ``seed`` and ``epoch`` in every process), each global batch of ``batch_size``
        split evenly over ``world_size`` ranks (this rank's share), from step ``start_step``
        (a mid-epoch resume). ``steps(...)`` says how many there are."""
        x, y = self.tensors(split)
        n = len(x)
        if shuffle:
            g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        per_rank = batch_size // world_size
        if per_rank * world_size != batch_size:
            raise ValueError(f"batch_size {batch_size} must divide evenly over {world_size} ranks")
        for step in range(start_step, self.steps(split, batch_size, drop_last=drop_last)):
            idx = order[step * batch_size : (step + 1) * batch_size]
            mine = idx[rank * per_rank : (rank + 1) * per_rank] if world_size > 1 else idx
            yield x[mine], y[mine]

    def rows(
        self, split: str, index: torch.Tensor | np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples at ``index`` (positions within ``split``) as tensors, in that order:
        what BN calibration and the sampler's probe batch take, without the whole split."""
        x, y = self.tensors(split)
        i = torch.as_tensor(index, dtype=torch.long)
        return x[i], y[i]

    def steps(self, split: str, batch_size: int, *, drop_last: bool = True) -> int:
        """Steps of one epoch of ``split`` (at least one)."""
        n = self.sizes()[split]
        return max(1, n // batch_size if drop_last else -(-n // batch_size))

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3


def stratified_split(
    y: np.ndarray, fractions: tuple[float, ...], rng: np.random.Generator
) -> list[np.ndarray]:
    """Partition indices of ``y`` into ``len(fractions) + 1`` disjoint, per-class stratified
    parts; part ``i`` gets about ``fractions[i]`` of every class, the last part the rest.
    Every class keeps at least one sample in the last part (the training split)."""
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        start = 0
        for i, f in enumerate(fractions):
            k = round(f * len(idx))
            k = min(k, len(idx) - start - 1)  # leave one for training
            k = max(k, 0)
            parts[i].append(idx[start : start + k])
            start += k
        parts[-1].append(idx[start:])
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]


def make_splits(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    info: dict[str, Any] | None = None,
    raw: Mapping[str, Any] | None = None,
) -> DatasetSplits:
    """Split, normalise with training-split statistics, and wrap as tensors.

    ``x`` is float (N, C, H, W) or (N, D) already scaled to a sane range; normalisation is per
    channel (images) or per feature (tabular), with statistics of the training split only, so
    nothing of validation or test leaks into the model's input scaling.
    """
    for label, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= f < 0.9:
            raise DatasetError(f"{name}: {label}={f} must be in [0, 0.9)")
    rng = np.random.default_rng(seed)
    test_idx = np.zeros(0, dtype=np.int64)
    if test is None:
        test_idx, val_idx, train_idx = stratified_split(y, (test_fraction, val_fraction), rng)
        x_test, y_test = x[test_idx], y[test_idx]
    else:
        val_idx, train_idx = stratified_split(y, (val_fraction,), rng)
        x_test, y_test = test
    x_train = x[train_idx]
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    mean = x_train.mean(axis=axes, keepdims=True)
    std = x_train.std(axis=axes, keepdims=True)
    std = np.where(std < 1e-6, 1.0, std)

    def wrap(a: np.ndarray, b: np.ndarray) -> TensorDataset:
        xs = torch.from_numpy(((a - mean) / std).astype(np.float32))
        return TensorDataset(xs, torch.from_numpy(b.astype(np.int64)))

    num_classes = int(max(y.max(), y_test.max() if len(y_test) else 0)) + 1
    meta = dict(info or {})
    meta.update(
        mean=mean.reshape(-1).tolist(),
        std=std.reshape(-1).tolist(),
        # What an export does to the user's raw samples (search_spaces.nn.preprocess).
        preprocessing=None
        if raw is None
        else {**raw, "mean": mean.reshape(-1).tolist(), "std": std.reshape(-1).tolist()},
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction if test is None else None,
        provided_test=test is not None,
    )
    return DatasetSplits(
        name=name,
        train=wrap(x_train, y[train_idx]),
        val=wrap(x[val_idx], y[val_idx]),
        test=wrap(x_test, y_test),
        num_classes=num_classes,
        input_shape=tuple(int(s) for s in x.shape[1:]),
        info=meta,
        indices={
            "train": train_idx,
            "val": val_idx,
            "test": test_idx if test is None else np.arange(len(y_test)),
        },
    )
