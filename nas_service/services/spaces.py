"""Search-space lookups for validation and the catalogue (torch-free specs only)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from nas_service.domain import ValidationFailed


def build_space(space_id: str, options: dict[str, Any], field: str = "space") -> Any:
    """The space object, or ``ValidationFailed`` naming ``field.id`` / ``field.options``."""
    from search_spaces import UnknownSpace, get_space

    try:
        return get_space(space_id, **options)
    except UnknownSpace as exc:
        raise ValidationFailed.one(f"{field}.id", str(exc)) from exc
    except TypeError as exc:
        # An unexpected keyword: name it instead of echoing the constructor's signature.
        text = str(exc)
        name = text.rsplit("'", 2)[-2] if text.count("'") >= 2 else text
        raise ValidationFailed.one(
            f"{field}.options.{name}" if "unexpected keyword" in text else f"{field}.options",
            f"unknown option '{name}' for space '{space_id}'"
            if "unexpected keyword" in text
            else text,
        ) from exc
    except (ValueError, OverflowError) as exc:  # ValueError includes InvalidArch
        raise ValidationFailed.one(f"{field}.options", str(exc)) from exc


def space_summary(space_id: str, description: str) -> dict[str, Any]:
    return _summary(space_id, description)


@lru_cache(maxsize=32)
def _summary(space_id: str, description: str) -> dict[str, Any]:
    from search_spaces import get_space

    space = get_space(space_id)
    kinds: dict[str, dict[str, Any]] = {}
    for d in space.dims:
        k = kinds.setdefault(d.kind, {"count": 0, "choices": set()})
        k["count"] += 1
        k["choices"].update(d.choices)
    mn, mx = space.min_arch(), space.max_arch()
    try:
        size: int | None = int(space.size())
    except NotImplementedError:
        size = None
    return {
        "id": space_id,
        "description": description,
        "default_spec": space.spec(),
        "num_dims": len(space.dims),
        "dims_by_kind": {
            kind: {"count": v["count"], "choices": sorted(v["choices"])}
            for kind, v in sorted(kinds.items())
        },
        # A string: space sizes exceed 2**53, beyond what a JavaScript number holds exactly.
        "size": None if size is None else str(size),
        "flops_range": [space.flops(mn), space.flops(mx)],
        "params_range": [space.params(mn), space.params(mx)],
    }


def list_space_summaries() -> list[dict[str, Any]]:
    from search_spaces import list_spaces

    return [space_summary(sid, desc) for sid, desc in list_spaces().items()]
