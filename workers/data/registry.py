"""Registry of datasets: ``load_dataset(name, seed=..., **options)`` and ``list_datasets()``.

The datasets a job may name, and the upload formats, are catalog entries
(``nas_service.catalog.datasets``: options model, loader, shape); their loaders are resolved
from there. ``register_dataset`` adds loaders for local use only (the command-line tools), such
as CIFAR-10 from a folder of python batches.
"""

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


def _loader(name: str) -> Loader | None:
    from nas_service.catalog import CATALOG, resolve

    if name in CATALOG.names("dataset"):
        fn: Loader = resolve(CATALOG.get("dataset", name))
        return fn
    _load_builtin()
    return _LOADERS.get(name)


def load_dataset(name: str, *, seed: int = 0, **options: Any) -> DatasetSplits:
    """Load dataset ``name`` with seeded, disjoint, stratified train / val / test splits."""
    loader = _loader(name)
    if loader is None:
        raise DatasetError(f"unknown dataset '{name}'; known: {sorted(list_datasets())}")
    try:
        return loader(seed=seed, **options)
    except TypeError as exc:  # an unknown option: say which dataset and which options exist
        if "unexpected keyword" in str(exc) or "got an unexpected" in str(exc):
            raise DatasetError(f"dataset '{name}': {exc}") from exc
        raise


def list_datasets() -> dict[str, str]:
    """Dataset name -> one-line description (the catalog's and the local-only loaders)."""
    from nas_service.catalog import CATALOG

    _load_builtin()
    found = {e.name: e.summary for e in CATALOG.entries("dataset")}
    return dict(sorted({**_DESCRIPTIONS, **found}.items()))


def _load_builtin() -> None:
    # Importing the modules registers them; lazy so the registry has no import cycle.
    from workers.data import files  # noqa: F401
