"""Registry of datasets: ``load_dataset(name, seed=..., **options)`` and ``list_datasets()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workers.data.base import DatasetError, DatasetSplits

Loader = Callable[..., DatasetSplits]
_LOADERS: dict[str, Loader] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_dataset(name: str, description: str) -> Callable[[Loader], Loader]:
    def deco(fn: Loader) -> Loader:
        _LOADERS[name] = fn
        _DESCRIPTIONS[name] = description
        return fn

    return deco


def load_dataset(name: str, *, seed: int = 0, **options: Any) -> DatasetSplits:
    """Load dataset ``name`` with seeded, disjoint, stratified train / val / test splits."""
    _load_builtin()
    if name not in _LOADERS:
        raise DatasetError(f"unknown dataset '{name}'; known: {sorted(_LOADERS)}")
    try:
        return _LOADERS[name](seed=seed, **options)
    except TypeError as exc:  # an unknown option: say which dataset and which options exist
        if "unexpected keyword" in str(exc) or "got an unexpected" in str(exc):
            raise DatasetError(f"dataset '{name}': {exc}") from exc
        raise


def list_datasets() -> dict[str, str]:
    """Dataset name -> one-line description."""
    _load_builtin()
    return dict(sorted(_DESCRIPTIONS.items()))


def _load_builtin() -> None:
    # Importing the modules registers them; lazy so the registry has no import cycle.
    from workers.data import builtin, files  # noqa: F401
