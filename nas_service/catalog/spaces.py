"""Search spaces, as the catalog shows them: a live view of ``search_spaces.registry`` (a space
registers itself there, with its modality and fitting rule) plus each space's summary."""

from __future__ import annotations

from typing import Any

from nas_service.catalog.registry import Entry

KIND = "space"


def summary(space_id: str) -> dict[str, Any]:
    """Dimensions by kind, size, MACs and parameter ranges of the space at its defaults."""
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


def entries() -> list[Entry]:
    from search_spaces import list_spaces, space_entry

    out = []
    for sid, text in list_spaces().items():
        e = space_entry(sid)
        out.append(
            Entry(
                KIND,
                sid,
                text,
                info={"modality": e.modality, "data_bound": list(e.data_bound)},
            )
        )
    return out
