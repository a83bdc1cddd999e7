"""The built-in entries of every kind, registered on the catalog's first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nas_service.catalog.registry import Catalog


def register_all(catalog: Catalog) -> None:
    from nas_service.catalog import (
        datasets,
        devices,
        exports,
        objectives,
        searchers,
        spaces,
        training,
    )

    catalog.provide(spaces.KIND, spaces.entries)
    for entry in datasets.entries():
        catalog.register(entry)
    for module in (searchers, objectives, exports, devices, training):
        for entry in module.ENTRIES:
            catalog.register(entry)
