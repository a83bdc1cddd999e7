"""``make_searcher(name, space, objectives, seed=..., **options)``: the one entry point.

Searchers are catalog entries (``nas_service.catalog.searchers``): the entry names the class
and the options model. The user's options (a job's ``search.options``) are checked with that
model, the one the API checked at submission; the rest (``batch_size``, ``constraints``,
``estimates``, ...) is the caller's wiring and goes to the constructor as given.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from nas_service.catalog import CATALOG, UnknownEntry, resolve
from search_spaces.base import SearchSpace
from workers.search.base import Searcher
from workers.search.objectives import Objective

KIND = "searcher"


class UnknownSearcher(ValueError):
    pass


class _Searchers(Mapping[str, type[Searcher]]):
    """Name -> class of every searcher in the catalog (read live)."""

    def __getitem__(self, name: str) -> type[Searcher]:
        try:
            cls: type[Searcher] = resolve(CATALOG.get(KIND, name))
        except UnknownEntry as exc:
            raise KeyError(name) from exc
        return cls

    def __iter__(self) -> Iterator[str]:
        return iter(CATALOG.names(KIND))

    def __len__(self) -> int:
        return len(CATALOG.names(KIND))


SEARCHERS = _Searchers()


def make_searcher(
    name: str, space: SearchSpace, objectives: Sequence[Objective], *, seed: int = 0, **options: Any
) -> Searcher:
    try:
        entry = CATALOG.get(KIND, name)
    except UnknownEntry:
        raise UnknownSearcher(
            f"unknown search algorithm '{name}'; known: {CATALOG.names(KIND)}"
        ) from None
    model = entry.options
    user = {k: v for k, v in options.items() if model is not None and k in model.model_fields}
    if model is not None:
        try:
            checked = model.model_validate(user).model_dump(exclude_none=True)
        except ValidationError as exc:
            raise UnknownSearcher(f"search algorithm '{name}': {exc}") from exc
        options = {**{k: v for k, v in options.items() if k not in user}, **checked}
    cls: type[Searcher] = resolve(entry)
    try:
        return cls(space, objectives, seed=seed, **options)
    except TypeError as exc:
        raise UnknownSearcher(
            f"search algorithm '{name}': bad options {sorted(options)}: {exc}"
        ) from exc
