"""The dataset object every stage shares: seeded, disjoint train / validation / test splits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import TensorDataset


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
    info: dict[str, Any] = field(default_factory=dict)

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        ds: TensorDataset = getattr(self, split)
        x, y = ds.tensors
        return x, y

    def sizes(self) -> dict[str, int]:
        return {s: len(getattr(self, s)) for s in ("train", "val", "test")}
