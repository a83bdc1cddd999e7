"""Feature encodings of archs for the predictors.

``onehot`` is ``space.features``, the ordinal position of each active choice (in [0, 1]; 0 when
inactive, so monotone trends such as "wider is better" need one weight, not one per choice), and
the log of the arch's MACs and parameters rescaled by those of the largest arch, which lets a
linear model see overall size. ``joint`` adds, for every group
of dimensions sharing a prefix (e.g. ``s2.b3.kernel`` and ``s2.b3.expand``), a one-hot of the
group's combined choice, so additive models can price each block configuration separately.
``latency`` crosses those joint one-hots with the resolution (cost scales with the input size)
and adds MACs and parameters on a linear scale: an additive latency model per input size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from search_spaces.base import SearchSpace

ENCODINGS = ("onehot", "joint", "latency")


class Featurizer:
    def __init__(self, space: SearchSpace, encoding: str = "onehot"):
        if encoding not in ENCODINGS:
            raise ValueError(f"feature encoding {encoding!r} is not known; use one of {ENCODINGS}")
        self.space = space
        self.encoding = encoding
        big = space.max_arch()
        self._log_flops = math.log(max(2, space.flops(big)))
        self._log_params = math.log(max(2, space.params(big)))
        groups: dict[str, list[int]] = {}
        for i, d in enumerate(space.dims):
            if "." in d.name:
                groups.setdefault(d.name.rsplit(".", 1)[0], []).append(i)
        self._groups = [idx for idx in groups.values() if len(idx) > 1]
        self._group_sizes = [
            int(np.prod([len(space.dims[i].choices) for i in idx])) for idx in self._groups
        ]
        res = [d for d in space.dims if d.kind == "resolution"]
        self._res_dim = res[0] if res else None
        self._n_res = len(res[0].choices) if res else 1
        self._flops = float(max(1, space.flops(big)))
        self._params = float(max(1, space.params(big)))

    def __call__(self, archs: Sequence[Mapping[str, int]]) -> np.ndarray:
        rows = [self._one(a) for a in archs]
        if not rows:
            return np.zeros((0, self.dim()), dtype=np.float64)
        return np.stack(rows)

    def dim(self) -> int:
        n = self.space.num_features() + len(self.space.dims) + 2
        if self.encoding == "joint":
            n += sum(self._group_sizes)
        elif self.encoding == "latency":
            n += 2 + sum(self._group_sizes) * self._n_res
        return n

    def _one(self, arch: Mapping[str, int]) -> np.ndarray:
        a = self.space.canonical(arch)
        active = self.space.active_dims(a)
        ordinal = np.asarray(
            [
                (d.choices.index(a[d.name]) + 1) / len(d.choices) if d.name in active else 0.0
                for d in self.space.dims
            ]
        )
        parts = [
            self.space.features(a).astype(np.float64),
            ordinal,
            np.asarray(
                [
                    math.log(max(2, self.space.flops(a))) / self._log_flops,
                    math.log(max(2, self.space.params(a))) / self._log_params,
                ]
            ),
        ]
        if self.encoding in ("joint", "latency"):
            r = 0
            if self.encoding == "latency":
                parts.append(
                    np.asarray(
                        [self.space.flops(a) / self._flops, self.space.params(a) / self._params]
                    )
                )
                if self._res_dim is not None:
                    r = self._res_dim.choices.index(a[self._res_dim.name])
            width = self._n_res if self.encoding == "latency" else 1
            g = self.space.encode(a)
            for idx, size in zip(self._groups, self._group_sizes, strict=True):
                v = np.zeros(size * width)
                if all(self.space.dims[i].name in active for i in idx):
                    code = 0
                    for i in idx:
                        code = code * len(self.space.dims[i].choices) + g[i]
                    v[code * width + r] = 1.0
                parts.append(v)
        return np.concatenate(parts)
