"""Registry of search spaces: ``get_space(id, **options)`` and ``list_spaces()``. Torch-free."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from search_spaces.base import SearchSpace

_FACTORIES: dict[str, Callable[..., SearchSpace]] = {}
_DESCRIPTIONS: dict[str, str] = {}


class UnknownSpace(KeyError):
    def __init__(self, space_id: str):
        self.space_id = space_id
        super().__init__(f"unknown search space '{space_id}'; known: {sorted(_FACTORIES)}")

    def __str__(self) -> str:
        return str(self.args[0])


def register_space(
    space_id: str, description: str
) -> Callable[[Callable[..., SearchSpace]], Callable[..., SearchSpace]]:
    def deco(factory: Callable[..., SearchSpace]) -> Callable[..., SearchSpace]:
        _FACTORIES[space_id] = factory
        _DESCRIPTIONS[space_id] = description
        return factory

    return deco


def get_space(id: str, **options: Any) -> SearchSpace:
    _load_builtin()
    if id not in _FACTORIES:
        raise UnknownSpace(id)
    return _FACTORIES[id](**options)


def list_spaces() -> dict[str, str]:
    """Space id -> one-line description."""
    _load_builtin()
    return dict(sorted(_DESCRIPTIONS.items()))


def _load_builtin() -> None:
    # Importing the modules registers them; done lazily so the registry has no import cycle.
    from search_spaces import mbv3, mlp  # noqa: F401
