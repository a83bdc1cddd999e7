"""The catalog of every vocabulary the layers share (see ``registry``)."""

from nas_service.catalog.registry import (
    CATALOG,
    KINDS,
    Catalog,
    Entry,
    UnknownEntry,
    register,
    resolve,
)

__all__ = ["CATALOG", "KINDS", "Catalog", "Entry", "UnknownEntry", "register", "resolve"]
