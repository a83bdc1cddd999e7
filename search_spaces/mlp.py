"""Elastic MLP space for tabular (or flattened image) inputs. Torch-free.

Network: ``depth`` hidden layers, layer j = Linear(no bias) -> BatchNorm1d -> ReLU with
``l{j}.width`` units, then dropout and a Linear classifier with bias. Elastic width slices the
first units of each layer, elastic depth keeps the first layers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from search_spaces.base import Dim, SearchSpace
from search_spaces.fitting import DataShape
from search_spaces.registry import register_space


def check_int_choices(space_id: str, field: str, values: Any, minimum: int) -> tuple[int, ...]:
    """Validate a user-given choice set: non-empty, distinct integers >= ``minimum``."""
    if isinstance(values, (int, str)) or not isinstance(values, Sequence) or not values:
        raise ValueError(
            f"space '{space_id}': option '{field}' must be a non-empty list of integers, "
            f"got {values!r}"
        )
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ValueError(
                f"space '{space_id}': option '{field}' has {v!r}; every value must be an "
                f"integer >= {minimum}"
            )
        out.append(int(v))
    if len(set(out)) != len(out):
        raise ValueError(f"space '{space_id}': option '{field}' has duplicates: {out}")
    return tuple(sorted(out))


def check_int(space_id: str, field: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"space '{space_id}': option '{field}' must be an integer >= {minimum}, got {value!r}"
        )
    return int(value)


def check_dropout(space_id: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(
            f"space '{space_id}': option 'dropout' must be a number in [0, 1), got {value!r}"
        )
    return float(value)


class MLPSpace(SearchSpace):
    id = "mlp"

    def __init__(
        self,
        in_features: int = 64,
        num_classes: int = 10,
        widths: Sequence[int] = (64, 128, 256),
        depths: Sequence[int] = (1, 2, 3),
        dropout: float = 0.0,
    ):
        sid = self.id
        self.in_features = check_int(sid, "in_features", in_features, 1)
        self.num_classes = check_int(sid, "num_classes", num_classes, 2)
        self.widths = check_int_choices(sid, "widths", widths, 1)
        self.depths = check_int_choices(sid, "depths", depths, 1)
        self.dropout = check_dropout(sid, dropout)
        self.max_depth = max(self.depths)
        dims = [Dim("depth", "depth", self.depths)]
        dims += [Dim(f"l{j}.width", "width", self.widths) for j in range(1, self.max_depth + 1)]
        options = {
            "in_features": self.in_features,
            "num_classes": self.num_classes,
            "widths": list(self.widths),
            "depths": list(self.depths),
            "dropout": self.dropout,
        }
        super().__init__(dims, options)

    def active_dims(self, arch: Mapping[str, int]) -> set[str]:
        d = arch["depth"]
        return {"depth"} | {f"l{j}.width" for j in range(1, d + 1)}

    def layer_widths(self, arch: Mapping[str, int]) -> list[int]:
        """Hidden widths of the active layers, in order."""
        a = self.canonical(arch)
        return [a[f"l{j}.width"] for j in range(1, a["depth"] + 1)]

    def flops(self, arch: Mapping[str, int]) -> int:
        dims = [self.in_features, *self.layer_widths(arch), self.num_classes]
        return sum(a * b for a, b in itertools.pairwise(dims))

    def params(self, arch: Mapping[str, int]) -> int:
        widths = self.layer_widths(arch)
        total = 0
        prev = self.in_features
        for w in widths:
            total += prev * w + 2 * w  # weight (no bias) + BN affine
            prev = w
        return total + prev * self.num_classes + self.num_classes

    def input_shape(self, arch: Mapping[str, int]) -> tuple[int, ...]:
        return (self.in_features,)

    def short(self, arch: Mapping[str, int]) -> str:
        return "w" + "-".join(str(w) for w in self.layer_widths(arch))

    def size(self) -> int:
        return sum(len(self.widths) ** d for d in self.depths)


def fit_mlp(data: DataShape) -> dict[str, Any]:
    """Any sample shape, flattened: its size is the input width."""
    return {"in_features": int(math.prod(data.input_shape)), "num_classes": data.num_classes}


@register_space(
    "mlp",
    "Elastic MLP (depth and per-layer width) for tabular or flattened inputs",
    modality="any",
    fit=fit_mlp,
    data_bound=("in_features", "num_classes"),
    nn="search_spaces.nn.mlp",
)
def make_mlp(**options: Any) -> MLPSpace:
    return MLPSpace(**options)
