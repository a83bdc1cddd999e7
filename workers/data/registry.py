"""Loading a dataset by name: ``load_dataset(name, seed=..., **options)``; a converted upload by
its on-disk store (``store=<folder>``, set by the runner), memory-mapped.

Every dataset is a catalog entry (``nas_service.catalog.datasets``): its reader returns the
arrays, and this splits them (seeded, disjoint, stratified train / val / test), normalises with
the training split's statistics and wraps them as tensors.
"""

from __future__ import annotations

from typing import Any

from nas_service.catalog import CATALOG, UnknownEntry, resolve
from nas_service.catalog.datasets import (
    DEFAULT_TEST_FRACTION,
    DEFAULT_VAL_FRACTION,
    SPLIT_OPTIONS,
    Arrays,
)
from nas_service.catalog.datasets.store import open_store
from workers.data.base import DatasetError, DatasetSplits, make_splits, store_splits


def load_dataset(name: str, *, seed: int = 0, **options: Any) -> DatasetSplits:
    """Load dataset ``name`` with seeded, disjoint, stratified train / val / test splits."""
    try:
        entry = CATALOG.get("dataset", name)
    except UnknownEntry as exc:
        raise DatasetError(f"unknown dataset '{name}'; known: {exc.known}") from None
    split = {k: options.pop(k) for k in SPLIT_OPTIONS if k in options}
    val = split.get("val_fraction")
    test = split.get("test_fraction")
    val_fraction = DEFAULT_VAL_FRACTION if val is None else float(val)
    test_fraction = DEFAULT_TEST_FRACTION if test is None else float(test)
    store = options.pop("store", None)
    if store is not None:  # a converted upload (the runner names it; never a user option)
        return store_splits(
            open_store(store), seed=seed, val_fraction=val_fraction, test_fraction=test_fraction
        )
    try:
        arrays: Arrays = resolve(entry)(seed=seed, **options)
    except TypeError as exc:  # an unknown option: say which dataset and which options exist
        if "unexpected keyword" in str(exc):
            raise DatasetError(f"dataset '{name}': {exc}") from exc
        raise
    return make_splits(
        arrays.name,
        arrays.x,
        arrays.y,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        test=arrays.test,
        info=arrays.info,
        raw=arrays.raw.to_json(),
    )


def list_datasets() -> dict[str, str]:
    """Dataset name -> one-line description."""
    return {e.name: e.summary for e in CATALOG.entries("dataset")}
