"""CIFAR-10 from a local copy of its python batches (``data_batch_1`` .. ``data_batch_5`` and
``test_batch``), for the command-line tools: not a job's dataset.

The batches are pickles: they are read with the unpickler of ``cifar.py`` that admits only what
numpy arrays need, so a crafted file cannot run code on load. (Uploads and registered copies of
CIFAR-10/100 are the ``cifar`` format.)
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from nas_service.catalog.datasets.base import (
    Arrays,
    DatasetError,
    RawLayout,
    SplitOptions,
    check_arrays,
    dataset_entry,
)
from nas_service.catalog.datasets.cifar import BatchUnpickler
from search_spaces import DataShape


class Options(SplitOptions):
    max_train: int | None = Field(default=None, ge=10)
    max_test: int | None = Field(default=None, ge=1)


def shape(options: Mapping[str, Any], info: Mapping[str, Any]) -> DataShape:
    return DataShape.of((3, 32, 32), 10)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DatasetError(f"{path}: file not found (expected the CIFAR-10 python batch)")
    try:
        with path.open("rb") as fh:
            batch = BatchUnpickler(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError) as exc:
        raise DatasetError(f"{path}: not a CIFAR-10 python batch ({exc})") from exc
    if not isinstance(batch, dict):
        raise DatasetError(f"{path}: expected a dict with keys data and labels")
    batch = {(k.decode() if isinstance(k, bytes) else k): v for k, v in batch.items()}
    for key in ("data", "labels"):
        if key not in batch:
            raise DatasetError(f"{path}: missing key '{key}'; found keys {sorted(batch)}")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetError(f"{path}: shape mismatch: data is {data.shape}, expected (N, 3072)")
    if len(labels) != len(data):
        raise DatasetError(
            f"{path}: label count mismatch: {len(data)} images but {len(labels)} labels"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f"{path}: labels must be in 0..9, found {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels


def read(
    *,
    seed: int = 0,
    root: str | Path | None = None,
    max_train: int | None = None,
    max_test: int | None = None,
) -> Arrays:
    """``max_train`` / ``max_test`` take seeded subsets for CPU-sized runs."""
    if root is None:
        raise DatasetError("cifar10: the option 'root' (folder with data_batch_1..5) is required")
    base = Path(root)
    if (base / "cifar-10-batches-py").is_dir():
        base = base / "cifar-10-batches-py"
    parts = [_read_batch(base / f"data_batch_{i}") for i in range(1, 6)]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    xt, yt = _read_batch(base / "test_batch")
    rng = np.random.default_rng(seed)
    if max_train is not None and max_train < len(x):
        keep = np.sort(rng.permutation(len(x))[:max_train])
        x, y = x[keep], y[keep]
    if max_test is not None and max_test < len(xt):
        keep = np.sort(rng.permutation(len(xt))[:max_test])
        xt, yt = xt[keep], yt[keep]
    xf = x.astype(np.float32) / 255.0
    xtf = xt.astype(np.float32) / 255.0
    check_arrays(xf, y, str(base))
    raw = RawLayout("NCHW", "uint8", 255.0)  # a batch's rows reshaped to (N, 3, 32, 32)
    info = {"root": str(base), "classes": 10}
    return Arrays("cifar10", xf, y, raw, test=(xtf, yt), info=info)


ENTRY = dataset_entry(
    "cifar10",
    "CIFAR-10 from a local folder of its python batches (the command-line tools only)",
    Options,
    f"{__name__}:read",
    shape,
    builtin=False,
    file_option="root",
)
