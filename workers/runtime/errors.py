"""Exceptions that crossed Ray, recognised by type.

Ray re-raises a task's exception in the caller as a ``RayTaskError`` (an instance of the
original class too, via ``as_instanceof_cause``) and Tune reports a trial's as a wrapper; the
original is ``cause``. Cancellation and the like are recognised on that cause with
``isinstance``, never by comparing class names.
"""

from __future__ import annotations

from ray.exceptions import RayTaskError


def task_cause(exc: BaseException) -> BaseException:
    """The exception the task (or trial) itself raised, unwrapped from Ray's wrappers."""
    seen = {id(exc)}
    while isinstance(exc, RayTaskError):
        cause = exc.cause
        if not isinstance(cause, BaseException) or id(cause) in seen:
            break
        seen.add(id(cause))
        exc = cause
    return exc


Kinds = type[BaseException] | tuple[type[BaseException], ...]


def caused_by(exc: BaseException, kinds: Kinds) -> bool:
    """Whether ``exc`` is, or wraps, one of ``kinds``."""
    return isinstance(exc, kinds) or isinstance(task_cause(exc), kinds)
