"""Torch-free search-space specifications.

An architecture (``Arch``) is a plain mapping from dimension name to the chosen value, e.g.
``{"resolution": 32, "s1.depth": 3, "s1.b1.kernel": 5, ...}``. It is JSON as it stands. A
*genotype* is the tuple of option indices in ``dims`` order. Every arch a space hands out is
*canonical*: dimensions that the arch does not use (kernel and expand of blocks beyond a stage's
depth, widths of layers beyond the depth) hold their first choice, so that one network has
exactly one genotype. That is what makes candidates unique per job and arch.
"""

from __future__ import annotations

import copy
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Arch = dict[str, int]
Genotype = tuple[int, ...]


class InvalidArch(ValueError):
    """An architecture that the space cannot build; names the dimension, value and choices."""

    def __init__(self, space_id: str, dim: str, value: object, allowed: Sequence[object] | str):
        self.space_id = space_id
        self.dim = dim
        self.value = value
        self.allowed = allowed
        reason = allowed if isinstance(allowed, str) else f"allowed values are {list(allowed)}"
        super().__init__(f"invalid arch for space '{space_id}': {dim}={value!r}; {reason}")

    def __reduce__(
        self,
    ) -> tuple[type[InvalidArch], tuple[str, str, object, Sequence[object] | str]]:
        # Ray and multiprocessing pickle exceptions; rebuild from the fields, not the message.
        return (type(self), (self.space_id, self.dim, self.value, self.allowed))


@dataclass(frozen=True)
class Dim:
    """One discrete choice of the space.

    ``kind`` groups dimensions for ``restrict`` (``kernel``, ``expand``, ``depth``, ``width``,
    ``resolution``).
    """

    name: str
    kind: str
    choices: tuple[int, ...]


class SearchSpace(ABC):
    """A finite, discrete space of architectures. Subclasses define dims and the analytics."""

    id: str = ""

    def __init__(self, dims: Sequence[Dim], options: Mapping[str, Any]):
        self.dims: tuple[Dim, ...] = tuple(dims)
        self.options: dict[str, Any] = dict(options)
        self._index = {d.name: i for i, d in enumerate(self.dims)}
        # What sample/min/max may use; encode/decode always work over the full choices.
        self.allowed: dict[str, tuple[int, ...]] = {d.name: d.choices for d in self.dims}

    # ----- hooks for subclasses -------------------------------------------------------------
    @abstractmethod
    def active_dims(self, arch: Mapping[str, int]) -> set[str]:
        """Names of the dimensions that shape the network for this arch."""

    @abstractmethod
    def flops(self, arch: Mapping[str, int]) -> int:
        """Multiply-accumulates of one forward pass of one input (conv and linear layers)."""

    @abstractmethod
    def params(self, arch: Mapping[str, int]) -> int:
        """Parameter count of the static subnet (``extract(arch)``), exactly."""

    def input_shape(self, arch: Mapping[str, int]) -> tuple[int, ...]:
        """Shape of one input sample (without batch) that the arch consumes."""
        raise NotImplementedError

    # ----- generic machinery ----------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """JSON that rebuilds the same space with ``get_space(**spec)``."""
        return {"id": self.id, **json.loads(json.dumps(self.options))}

    def dim(self, name: str) -> Dim:
        return self.dims[self._index[name]]

    def canonical(self, arch: Mapping[str, int]) -> Arch:
        """Validate and put inactive dimensions at their first choice."""
        checked = self.validate(arch)
        active = self.active_dims(checked)
        return {d.name: checked[d.name] if d.name in active else d.choices[0] for d in self.dims}

    def validate(self, arch: Mapping[str, Any]) -> Arch:
        if not isinstance(arch, Mapping):
            raise InvalidArch(self.id, "<arch>", arch, "an arch is a JSON object of dimensions")
        unknown = sorted(set(arch) - set(self._index))
        if unknown:
            raise InvalidArch(self.id, unknown[0], arch[unknown[0]], "unknown dimension")
        out: Arch = {}
        for d in self.dims:
            if d.name not in arch:
                raise InvalidArch(self.id, d.name, None, d.choices)
            v = arch[d.name]
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, np.integer))
                or int(v) not in d.choices
            ):
                raise InvalidArch(self.id, d.name, v, d.choices)
            out[d.name] = int(v)
        return out

    def sample(self, rng: np.random.Generator) -> Arch:
        raw = {d.name: int(rng.choice(self.allowed[d.name])) for d in self.dims}
        return self.canonical(raw)

    def encode(self, arch: Mapping[str, int]) -> Genotype:
        a = self.canonical(arch)
        return tuple(d.choices.index(a[d.name]) for d in self.dims)

    def decode(self, genotype: Sequence[int]) -> Arch:
        g = tuple(genotype)
        if len(g) != len(self.dims):
            raise InvalidArch(
                self.id, "<genotype>", len(g), f"a genotype has {len(self.dims)} genes"
            )
        raw: dict[str, int] = {}
        for d, i in zip(self.dims, g, strict=True):
            if (
                isinstance(i, bool)
                or not isinstance(i, (int, np.integer))
                or not 0 <= i < len(d.choices)
            ):
                raise InvalidArch(self.id, d.name, i, f"gene index in 0..{len(d.choices) - 1}")
            raw[d.name] = d.choices[int(i)]
        return self.canonical(raw)

    def cardinalities(self) -> tuple[int, ...]:
        return tuple(len(d.choices) for d in self.dims)

    def features(self, arch: Mapping[str, int]) -> np.ndarray:
        """One-hot of each active dimension's choice; inactive dimensions are all zero."""
        a = self.canonical(arch)
        active = self.active_dims(a)
        parts = []
        for d in self.dims:
            v = np.zeros(len(d.choices), dtype=np.float32)
            if d.name in active:
                v[d.choices.index(a[d.name])] = 1.0
            parts.append(v)
        return np.concatenate(parts)

    def num_features(self) -> int:
        return int(sum(len(d.choices) for d in self.dims))

    def min_arch(self) -> Arch:
        return self.canonical({d.name: min(self.allowed[d.name]) for d in self.dims})

    def max_arch(self) -> Arch:
        return self.canonical({d.name: max(self.allowed[d.name]) for d in self.dims})

    def restrict(self, **allowed_by_kind: Iterable[int]) -> SearchSpace:
        """A view that samples only the given values per dimension kind (or exact dim name).

        Encoding is unchanged (genotypes index the full choices), so archs of a restricted
        space are archs of the full space. Used for progressive-shrinking phases.
        """
        view = copy.copy(self)
        view.allowed = dict(self.allowed)
        for key, values in allowed_by_kind.items():
            vals = tuple(sorted({int(v) for v in values}))
            targets = [d for d in self.dims if d.kind == key or d.name == key]
            if not targets:
                raise ValueError(f"space '{self.id}' has no dimension kind or name '{key}'")
            for d in targets:
                keep = tuple(v for v in d.choices if v in vals)
                if not keep:
                    raise ValueError(
                        f"restrict {key}={list(vals)} leaves no choice for {d.name} "
                        f"(choices {list(d.choices)})"
                    )
                view.allowed[d.name] = keep
        return view

    def to_json(self, arch: Mapping[str, int]) -> dict[str, int]:
        return dict(self.canonical(arch))

    def from_json(self, data: Mapping[str, Any] | str) -> Arch:
        obj = json.loads(data) if isinstance(data, str) else data
        return self.canonical(obj)

    def short(self, arch: Mapping[str, int]) -> str:
        """Compact, human-readable form; default is the genotype as digits."""
        return "".join(str(i) for i in self.encode(arch))

    def size(self) -> int:
        """Number of distinct canonical archs (may be huge; Python int)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec()})"
