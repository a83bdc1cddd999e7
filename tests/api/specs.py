"""Job specs for API tests."""

from __future__ import annotations

import copy
from typing import Any

BASE: dict[str, Any] = {
    "name": "tiny mlp",
    "space": {"id": "mlp", "options": {"in_features": 64, "num_classes": 10}},
    "dataset": {"name": "digits"},
    "training": {"preset": "tiny", "epochs_scale": 0.5},
    "search": {
        "algorithm": "evolution",
        "budget": 20,
        "population": 8,
        "objectives": [
            {"name": "accuracy", "direction": "max"},
            {"name": "flops", "direction": "min"},
        ],
    },
    "devices": ["cpu"],
    "seed": 1,
}


def spec(**changes: Any) -> dict[str, Any]:
    """BASE with dotted-path changes: spec(**{"search.budget": 5})."""
    out = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = out
        *parents, last = path.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return out
