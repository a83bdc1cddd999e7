"""The catalog: one registry for every vocabulary the layers share.

An entry is a kind (``space``, ``searcher``, ``dataset``, ``objective``, ``export``,
``device_runtime``, ``training_preset``, ``sampler``), a name, a one-line summary, a typed
options model (pydantic; ``None`` when the entry takes no options) and, where the workers
implement it, ``impl``: the ``"module:attribute"`` of the implementation. The service never
imports ``impl`` (it may name torch code); the workers resolve it with :func:`resolve`.

Everything that lists names reads them here: the job spec's checks and the OpenAPI enums, the
submit-time validation, ``GET /api/v1/catalog`` (the dashboard and the CLI), the workers'
factories. Adding an entry is one module that calls :func:`register` plus, where the workers
run it, its implementation.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

KINDS: dict[str, str] = {
    "space": "search spaces (architectures a job searches)",
    "searcher": "search algorithms (search.algorithm) and their search.options",
    "dataset": "datasets: built-in ones by name, upload formats by format",
    "objective": "metrics a job optimises or bounds (search.objectives[].name)",
    "export": "download formats of a subnet",
    "device_runtime": "how a device runs a network when its latency is measured",
    "training_preset": "training.preset: how much of the default schedule a job trains",
    "sampler": "training.sampler and training.sampler_policy: how subnets are drawn",
}


class UnknownEntry(ValueError):
    """A name that the catalog does not hold for its kind; lists the known names."""

    def __init__(self, kind: str, name: object, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        super().__init__(f"unknown {kind} {name!r}; known: {known}")

    def __reduce__(self) -> tuple[type[UnknownEntry], tuple[str, object, list[str]]]:
        return (type(self), (self.kind, self.name, self.known))


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    summary: str
    options: type[BaseModel] | None = None
    impl: str | None = None
    # Kind-specific facts, JSON values (an objective's direction and unit, an export's file
    # extension, a dataset's modality, ...). Read through the kind's helper functions.
    info: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "summary": self.summary,
            "options_schema": None if self.options is None else self.options.model_json_schema(),
            **{k: v for k, v in self.info.items() if not callable(v)},
        }


class Catalog:
    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        # Kinds whose entries another registry owns (spaces: ``search_spaces.registry``), read
        # live so that a space registered there is in the catalog at once.
        self._providers: dict[str, Callable[[], list[Entry]]] = {}
        self._lock = threading.RLock()
        self._loaded = False

    def provide(self, kind: str, entries: Callable[[], list[Entry]]) -> None:
        self._providers[kind] = entries

    def register(self, entry: Entry) -> Entry:
        if entry.kind not in KINDS:
            raise ValueError(f"unknown catalog kind {entry.kind!r}; kinds: {sorted(KINDS)}")
        with self._lock:
            self._entries[entry.kind][entry.name] = entry
        return entry

    def unregister(self, kind: str, name: str) -> None:
        with self._lock:
            self._entries[kind].pop(name, None)

    def _of(self, kind: str) -> dict[str, Entry]:
        self._load()
        if kind not in KINDS:
            raise ValueError(f"unknown catalog kind {kind!r}; kinds: {sorted(KINDS)}")
        provided = {e.name: e for e in self._providers[kind]()} if kind in self._providers else {}
        return {**provided, **self._entries[kind]}

    def get(self, kind: str, name: object) -> Entry:
        entry = self._of(kind).get(name) if isinstance(name, str) else None
        if entry is None:
            raise UnknownEntry(kind, name, self.names(kind))
        return entry

    def names(self, kind: str) -> list[str]:
        return list(self._of(kind))

    def entries(self, kind: str) -> list[Entry]:
        return list(self._of(kind).values())

    def __iter__(self) -> Iterator[Entry]:
        for kind in KINDS:
            yield from self.entries(kind)

    def to_json(self) -> dict[str, Any]:
        return {
            kind: {"description": text, "entries": [e.to_json() for e in self.entries(kind)]}
            for kind, text in KINDS.items()
        }

    def _load(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            # The built-in entries: imported here, on first use, so that no entry module and
            # no implementation is imported by the registry at import time (no cycles).
            from nas_service.catalog import builtin

            builtin.register_all(self)


CATALOG = Catalog()


def register(entry: Entry) -> Entry:
    """Add (or replace) an entry of the shared catalog."""
    return CATALOG.register(entry)


def load(path: str) -> Any:
    """The attribute a ``"module:attribute"`` path names."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def resolve(entry: Entry) -> Any:
    """The implementation an entry names (workers only: it may import torch)."""
    if not entry.impl:
        raise LookupError(f"{entry.kind} '{entry.name}' has no implementation to resolve")
    return load(entry.impl)
