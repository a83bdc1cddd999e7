"""Progress callbacks: ``on_step(info, net)``, ``on_epoch(info, net)``, optional
``on_rollback(info)`` and ``should_stop() -> bool`` (cancellation at the next step boundary).
Every hook is optional, so a plain object with just ``on_epoch`` works."""

from __future__ import annotations

import sys
from typing import Any, Protocol

from torch import nn


class Callback(Protocol):
    """Structural type; implement any subset of the hooks."""


class CallbackList:
    def __init__(self, callbacks: list[Any]):
        self.callbacks = callbacks

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(*args)

    def on_step(self, info: dict[str, Any], net: nn.Module) -> None:
        self._call("on_step", info, net)

    def on_epoch(self, info: dict[str, Any], net: nn.Module) -> None:
        self._call("on_epoch", info, net)

    def on_rollback(self, info: dict[str, Any]) -> None:
        self._call("on_rollback", info)

    def should_stop(self) -> bool:
        for cb in self.callbacks:
            fn = getattr(cb, "should_stop", None)
            if fn is not None and fn():
                return True
        return False


class _NoBar:
    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


def progress_bar(total: int, desc: str) -> Any:
    """A tqdm bar on stderr when it is a terminal; a no-op otherwise (logs stay clean)."""
    if not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr)
