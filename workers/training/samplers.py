"""Subnet samplers for supernet training: ``uniform`` and ``complexity-aware`` (FLOPs bins).

Uniform sampling per dimension concentrates on mid-size subnets, because FLOPs of random archs
peak in the middle. The complexity-aware sampler first picks a FLOPs bin (by a policy), then an
arch inside it, so the smallest and largest subnets get their share of training.

Every sampler keeps its own ``np.random.Generator``; ``state_dict`` captures it and any
policy state as JSON-compatible values so checkpoints stay loadable with ``weights_only``.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from search_spaces import Arch, SearchSpace

BinPolicy = Literal["uniform", "walk", "adaptive"]


class SamplerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["uniform", "complexity-aware"] = "complexity-aware"
    policy: BinPolicy = "uniform"
    bins: int = Field(default=8, ge=1, le=100, description="FLOPs bins (equal width over the pool)")
    pool_size: int = Field(
        default=1000, ge=10, description="seeded archs sampled to build the bins"
    )
    per_bin: Literal["pool", "rejection"] = "pool"
    rejection_tries: int = Field(default=200, ge=1)
    best_of: int = Field(default=1, ge=1, le=16, description="k candidates per draw, pick by loss")
    best_of_mode: Literal["best", "worst"] = "best"
    ema: float = Field(
        default=0.9, ge=0.0, lt=1.0, description="adaptive: EMA factor of improvement"
    )
    temperature: float = Field(default=0.05, gt=0.0, description="adaptive: softmax temperature")
    floor: float = Field(default=0.2, ge=0.0, le=1.0, description="adaptive: uniform mixing weight")


def _rng_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def _set_rng_state(rng: np.random.Generator, state: str) -> None:
    rng.bit_generator.state = json.loads(state)


class SubnetSampler(ABC):
    """Draws archs of ``space`` (a restricted view for the current phase).

    ``propose()`` returns ``best_of`` candidates (1 when best-of-k is off); the trainer picks
    one (by minibatch loss) and reports it with ``accept(arch, loss)``. A histogram of the FLOPs
    of accepted archs over fixed edges is kept until ``reset_histogram()``.
    """

    name = ""

    def __init__(self, space: SearchSpace, config: SamplerConfig, seed: int):
        self.space = space
        self.config = config
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        # The pool fixes the histogram edges (and the bins of the complexity-aware sampler).
        pool_rng = np.random.default_rng([seed, 1])
        pool = [space.min_arch(), space.max_arch()]
        pool += [space.sample(pool_rng) for _ in range(config.pool_size)]
        self.pool = pool
        self.pool_flops = np.array([space.flops(a) for a in pool], dtype=np.float64)
        lo, hi = float(self.pool_flops.min()), float(self.pool_flops.max())
        self.edges = np.linspace(lo, hi, config.bins + 1) if hi > lo else np.array([lo, lo + 1.0])
        self.counts = np.zeros(len(self.edges) - 1, dtype=np.int64)

    def bin_of(self, flops: float) -> int:
        i = int(np.searchsorted(self.edges, flops, side="right")) - 1
        return min(max(i, 0), len(self.edges) - 2)

    @abstractmethod
    def propose(self) -> list[Arch]: ...

    def accept(self, arch: Arch, loss: float) -> None:
        self.counts[self.bin_of(self.space.flops(arch))] += 1

    def histogram(self) -> dict[str, list[float] | list[int]]:
        return {"edges": [float(e) for e in self.edges], "counts": [int(c) for c in self.counts]}

    def reset_histogram(self) -> None:
        self.counts[:] = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "rng": _rng_state(self.rng),
            "counts": self.counts.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"sampler state is for '{state.get('name')}', not '{self.name}'")
        if state.get("seed") != self.seed:
            # The pool (and so the bins) derive from the seed: another seed means other bins.
            raise ValueError(
                f"sampler state has seed {state.get('seed')}, this sampler {self.seed}"
            )
        _set_rng_state(self.rng, state["rng"])
        self.counts = np.asarray(state["counts"], dtype=np.int64)


class UniformSampler(SubnetSampler):
    """Each dimension uniformly over its allowed choices (``space.sample``)."""

    name = "uniform"

    def propose(self) -> list[Arch]:
        return [self.space.sample(self.rng) for _ in range(self.config.best_of)]


class ComplexityAwareSampler(SubnetSampler):
    """Pick a FLOPs bin by ``policy``, then archs inside it from the pool or by rejection.

    Policies: ``uniform`` (each non-empty bin equally likely), ``walk`` (the target bin moves
    by -1, 0 or +1 between draws, reflecting at the ends: consecutive subnets have similar
    complexity), ``adaptive`` (softmax over an EMA of each bin's relative loss improvement,
    divided by ``temperature``, mixed with uniform by ``floor`` so no bin starves).
    """

    name = "complexity-aware"

    def __init__(self, space: SearchSpace, config: SamplerConfig, seed: int):
        super().__init__(space, config, seed)
        bins = np.array([self.bin_of(f) for f in self.pool_flops])
        self.members = [np.flatnonzero(bins == b) for b in range(len(self.edges) - 1)]
        self.nonempty = [b for b, m in enumerate(self.members) if len(m)]
        self.current = self.nonempty[len(self.nonempty) // 2]  # walk starts in the middle
        n = len(self.edges) - 1
        self.improve = np.zeros(n)  # EMA of relative loss improvement per bin
        self.last_loss = np.full(n, np.nan)  # last observed loss per bin
        self.target = self.current

    def probabilities(self) -> np.ndarray:
        n = len(self.edges) - 1
        p = np.zeros(n)
        idx = np.array(self.nonempty)
        uniform = np.full(len(idx), 1.0 / len(idx))
        if self.config.policy != "adaptive":
            p[idx] = uniform
            return p
        z = self.improve[idx] / self.config.temperature
        soft = np.exp(z - z.max())
        soft /= soft.sum()
        p[idx] = self.config.floor * uniform + (1.0 - self.config.floor) * soft
        return p

    def _next_bin(self) -> int:
        if self.config.policy == "walk":
            pos = self.nonempty.index(self.current)
            step = int(self.rng.integers(-1, 2))
            pos = pos + step
            if pos < 0 or pos >= len(self.nonempty):
                pos = pos - 2 * step  # reflect
            pos = min(max(pos, 0), len(self.nonempty) - 1)
            self.current = self.nonempty[pos]
            return self.current
        return int(self.rng.choice(len(self.edges) - 1, p=self.probabilities()))

    def _draw_in_bin(self, b: int) -> Arch:
        if self.config.per_bin == "rejection":
            lo, hi = self.edges[b], self.edges[b + 1]
            last = b == len(self.edges) - 2
            for _ in range(self.config.rejection_tries):
                a = self.space.sample(self.rng)
                f = self.space.flops(a)
                if lo <= f < hi or (last and f == hi):
                    return a
            # Extreme bins are rare under per-dimension sampling: fall back to the pool.
        i = int(self.rng.choice(self.members[b]))
        return dict(self.pool[i])

    def propose(self) -> list[Arch]:
        self.target = self._next_bin()
        return [self._draw_in_bin(self.target) for _ in range(self.config.best_of)]

    def accept(self, arch: Arch, loss: float) -> None:
        super().accept(arch, loss)
        if not math.isfinite(loss):
            return
        b = self.bin_of(self.space.flops(arch))
        prev = self.last_loss[b]
        if not np.isnan(prev):
            gain = (prev - loss) / max(abs(prev), 1e-8)
            self.improve[b] = self.config.ema * self.improve[b] + (1 - self.config.ema) * gain
        self.last_loss[b] = loss

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            current=self.current,
            improve=self.improve.tolist(),
            last_loss=[None if np.isnan(v) else float(v) for v in self.last_loss],
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.current = int(state["current"])
        self.improve = np.asarray(state["improve"], dtype=np.float64)
        self.last_loss = np.array(
            [np.nan if v is None else v for v in state["last_loss"]], dtype=np.float64
        )


def make_sampler(space: SearchSpace, config: SamplerConfig, seed: int) -> SubnetSampler:
    if config.name == "uniform":
        return UniformSampler(space, config, seed)
    return ComplexityAwareSampler(space, config, seed)
