"""Subnet samplers for supernet training: ``uniform`` and ``complexity-aware`` (FLOPs bins).

Uniform sampling per dimension concentrates on mid-size subnets, because the FLOPs of random
archs peak in the middle. The complexity-aware sampler works in two stages, as in AttentiveNAS:
each draw first picks a target complexity *bin* (by a policy), then a FRESH arch inside it.

Bins are quantiles of the FLOPs distribution of the space being trained (the restricted view
of the current shrinking phase): the edges are estimated once per phase from a seeded sample
of uniform archs, and that sample only sets the edges -- nothing is ever drawn from it. Equal
width bins over a huge space are mostly empty (the top one holds the largest arch alone), a
fixed pool repeats the same few archs; with quantile bins every bin holds ``1 / bins`` of the
mass, so rejection sampling of uniform archs finds one in about ``bins`` tries.

The largest and smallest subnets of the phase are trained every step by the sandwich rule, so
the complexity-aware sampler never returns them (unless the view has nothing else).

Policies for the target bin:
- ``uniform``: every bin equally likely;
- ``walk`` (ElasticViT): the target moves by -1, 0 or +1 bins between draws, reflecting at the
  ends, so consecutive subnets have similar complexity while the whole range is still covered;
- ``adaptive`` (ShiftNAS, simple form): every ``probe_every`` steps the trainer scores the same
  fixed probe archs of each bin on the same fixed probe batch (``probe_archs`` ->
  ``observe_probe``); a bin's score is an EMA of its relative loss decrease between probes, and
  the bin probabilities are a softmax of the scores over ``temperature``, mixed with uniform
  by ``floor`` so that no bin starves. Fixed archs on a fixed batch make the decrease a
  measurement of training progress, not of which arch or batch happened to be drawn.

Every sampler keeps its own ``np.random.Generator``; ``state_dict`` captures it and the policy
state as JSON-compatible values so checkpoints stay loadable with ``weights_only``.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from search_spaces import Arch, SearchSpace

BinPolicy = Literal["uniform", "walk", "adaptive"]

# Sub-streams of a sampler's seed: the edge estimate and the probe archs must not depend on
# how many draws the training has made, so each has its own generator.
_EDGE_STREAM = 1
_PROBE_STREAM = 2


class SamplerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["uniform", "complexity-aware"] = "complexity-aware"
    policy: BinPolicy = "uniform"
    bins: int = Field(
        default=8, ge=1, le=100, description="FLOPs bins: quantiles of the phase's distribution"
    )
    edge_samples: int = Field(
        default=2000,
        ge=10,
        description="seeded uniform archs that set the quantile edges (never drawn from)",
    )
    rejection_tries: int = Field(
        default=200, ge=1, description="uniform draws per arch before the nearest-FLOPs fallback"
    )
    best_of: int = Field(default=1, ge=1, le=16, description="k candidates per draw, pick by loss")
    best_of_mode: Literal["best", "worst"] = "best"
    probe_every: int = Field(default=10, ge=1, description="adaptive: steps between probes")
    probes_per_bin: int = Field(default=2, ge=1, le=16, description="adaptive: fixed archs/bin")
    probe_images: int = Field(default=64, ge=1, description="adaptive: fixed probe batch size")
    ema: float = Field(
        default=0.7, ge=0.0, lt=1.0, description="adaptive: EMA factor of the loss decrease"
    )
    # Relative decreases between probes are a few percent: at 0.02, a bin improving 2 points
    # faster than another is drawn e times as often (before the floor).
    temperature: float = Field(default=0.02, gt=0.0, description="adaptive: softmax temperature")
    floor: float = Field(default=0.2, ge=0.0, le=1.0, description="adaptive: uniform mixing weight")


def _rng_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def _set_rng_state(rng: np.random.Generator, state: str) -> None:
    rng.bit_generator.state = json.loads(state)


def quantile_edges(flops: np.ndarray, bins: int, lo: float, hi: float) -> np.ndarray:
    """Bin edges at the ``1/bins`` quantiles of ``flops``, the outer edges at ``lo`` / ``hi``
    (the smallest and largest arch) so every arch of the space falls in some bin.

    Repeated edges (a space with few distinct FLOPs values) are merged, so there may be fewer
    than ``bins`` bins; a single-valued space gets one bin of width 1.
    """
    inner = np.quantile(flops, np.linspace(0.0, 1.0, bins + 1)[1:-1]) if len(flops) else []
    edges = np.unique(np.concatenate([[lo], np.clip(inner, lo, hi), [hi]]).astype(np.float64))
    return edges if len(edges) > 1 else np.array([lo, lo + 1.0])


class SubnetSampler(ABC):
    """Draws archs of ``space`` (a restricted view for the current phase).

    ``propose()`` returns ``best_of`` candidates (1 when best-of-k is off); the trainer picks
    one (by minibatch loss) and reports it with ``accept(arch, loss)``. A histogram of the FLOPs
    of accepted archs over the quantile edges is kept until ``reset_histogram()``.
    """

    name = ""

    def __init__(self, space: SearchSpace, config: SamplerConfig, seed: int):
        self.space = space
        self.config = config
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.smallest, self.largest = space.min_arch(), space.max_arch()
        edge_rng = np.random.default_rng([seed, _EDGE_STREAM])
        # A single-arch view (the full-network phase) has nothing to estimate.
        n = config.edge_samples if self.smallest != self.largest else 0
        sample = [space.sample(edge_rng) for _ in range(n)]
        flops = np.array([space.flops(a) for a in sample], dtype=np.float64)
        lo, hi = float(space.flops(self.smallest)), float(space.flops(self.largest))
        self.edges = quantile_edges(flops, config.bins, lo, hi)
        self.counts = np.zeros(self.num_bins, dtype=np.int64)
        # Share of the edge sample per bin, ends excluded: which bins hold anything to draw.
        inner = [self.bin_of(f) for a, f in zip(sample, flops, strict=True) if self._inner(a)]
        self.mass = np.bincount(np.asarray(inner, dtype=np.int64), minlength=self.num_bins) / max(
            1, len(sample)
        )
        # A typical mid-size arch for the trainer's per-epoch evaluation (not a training draw).
        self.middle: Arch = (
            dict(sample[int(np.argsort(flops, kind="stable")[len(sample) // 2])])
            if sample
            else dict(self.largest)
        )

    @property
    def num_bins(self) -> int:
        return len(self.edges) - 1

    def _inner(self, arch: Arch) -> bool:
        """Neither the smallest nor the largest arch (those belong to the sandwich rule)."""
        return arch != self.smallest and arch != self.largest

    def bin_of(self, flops: float) -> int:
        i = int(np.searchsorted(self.edges, flops, side="right")) - 1
        return min(max(i, 0), self.num_bins - 1)

    @abstractmethod
    def propose(self) -> list[Arch]: ...

    def accept(self, arch: Arch, loss: float | None = None) -> None:
        # The loss is not needed (the histogram counts archs): the trainer passes none, which
        # keeps a host sync off every training step.
        self.counts[self.bin_of(self.space.flops(arch))] += 1

    # The adaptive policy's hooks; the other samplers never ask for a probe.
    def probe_due(self, step: int) -> bool:
        return False

    @property
    def probe_archs(self) -> list[Arch]:
        return []

    def observe_probe(self, losses: Sequence[float]) -> None:
        raise RuntimeError(f"sampler '{self.name}' takes no probe losses")

    def histogram(self) -> dict[str, list[float] | list[int]]:
        return {"edges": [float(e) for e in self.edges], "counts": [int(c) for c in self.counts]}

    def reset_histogram(self) -> None:
        self.counts[:] = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "rng": _rng_state(self.rng),
            "edges": [float(e) for e in self.edges],
            "counts": self.counts.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"sampler state is for '{state.get('name')}', not '{self.name}'")
        if state.get("seed") != self.seed:
            # The edges (and the probe archs) derive from the seed: another seed, other bins.
            raise ValueError(
                f"sampler state has seed {state.get('seed')}, this sampler {self.seed}"
            )
        edges = np.asarray(state.get("edges", self.edges), dtype=np.float64)
        if edges.shape != self.edges.shape or not np.allclose(edges, self.edges):
            raise ValueError("sampler state was built on other FLOPs bins (another space view?)")
        _set_rng_state(self.rng, state["rng"])
        self.counts = np.asarray(state["counts"], dtype=np.int64)


class UniformSampler(SubnetSampler):
    """Each dimension uniformly over its allowed choices (``space.sample``): the baseline,
    which may also return the sandwich ends when the view is small."""

    name = "uniform"

    def propose(self) -> list[Arch]:
        return [self.space.sample(self.rng) for _ in range(self.config.best_of)]


class ComplexityAwareSampler(SubnetSampler):
    """Pick a quantile FLOPs bin by ``policy``, then fresh archs inside it by rejection
    sampling of uniform archs (see the module docstring)."""

    name = "complexity-aware"

    def __init__(self, space: SearchSpace, config: SamplerConfig, seed: int):
        super().__init__(space, config, seed)
        # Bins with something besides the sandwich ends; only these are targeted.
        self.active = [b for b in range(self.num_bins) if self.mass[b] > 0]
        self.position = len(self.active) // 2  # walk: index into ``active``, starts mid-range
        self.target = self.active[self.position] if self.active else 0
        n = self.num_bins
        self.score = np.zeros(n)  # adaptive: EMA of the relative probe-loss decrease per bin
        self.last_probe = np.full(n, np.nan)  # adaptive: the previous probe loss per bin
        self.probes = 0  # adaptive: probe rounds observed in this phase
        self._probe_archs: list[Arch] = []
        self._probe_bins: list[int] = []
        if config.policy == "adaptive":
            probe_rng = np.random.default_rng([seed, _PROBE_STREAM])
            for b in self.active:
                for _ in range(config.probes_per_bin):
                    self._probe_archs.append(self._draw_in_bin(b, probe_rng))
                    self._probe_bins.append(b)

    # ----- target bin ---------------------------------------------------------------------
    def probabilities(self) -> np.ndarray:
        """Probability of each bin being the target (zero for bins with nothing to draw)."""
        p = np.zeros(self.num_bins)
        if not self.active:
            return p
        idx = np.asarray(self.active)
        uniform = np.full(len(idx), 1.0 / len(idx))
        if self.config.policy != "adaptive" or self.probes < 2:
            # Adaptive needs two probe rounds before there is a decrease to score.
            p[idx] = uniform
            return p
        z = self.score[idx] / self.config.temperature
        soft = np.exp(z - z.max())
        soft /= soft.sum()
        p[idx] = self.config.floor * uniform + (1.0 - self.config.floor) * soft
        return p

    def _next_bin(self) -> int:
        if self.config.policy == "walk":
            step = int(self.rng.integers(-1, 2))
            pos = self.position + step
            if not 0 <= pos < len(self.active):
                pos = self.position - step  # reflect at the ends
            self.position = min(max(pos, 0), len(self.active) - 1)
            return self.active[self.position]
        return int(self.rng.choice(self.num_bins, p=self.probabilities()))

    # ----- arch inside a bin --------------------------------------------------------------
    def _draw_in_bin(self, b: int, rng: np.random.Generator) -> Arch:
        """A uniform arch conditioned on bin ``b`` (rejection sampling), never a sandwich end.

        Each bin holds about ``1/bins`` of the mass, so ``rejection_tries`` (200 by default)
        fails with probability about ``(1 - 1/bins) ** tries`` (1e-12 for 8 bins). If it does
        fail, the tried arch whose FLOPs is nearest to the bin is returned: still fresh, still
        not an end, just slightly outside the target bin. If every try was a sandwich end (a
        view where the ends hold nearly all the mass), a one-dimension neighbour of the
        smallest arch is built instead.
        """
        lo, hi = float(self.edges[b]), float(self.edges[b + 1])
        best: Arch | None = None
        best_gap = math.inf
        for _ in range(self.config.rejection_tries):
            a = self.space.sample(rng)
            if not self._inner(a):
                continue
            f = float(self.space.flops(a))
            if self.bin_of(f) == b:
                return a
            gap = lo - f if f < lo else f - hi
            if gap < best_gap:
                best, best_gap = a, gap
        return best if best is not None else self._neighbour_of_smallest(rng)

    def _neighbour_of_smallest(self, rng: np.random.Generator) -> Arch:
        """The smallest arch with one dimension changed, avoiding both ends (random order)."""
        for i in rng.permutation(len(self.space.dims)):
            d = self.space.dims[int(i)]
            for v in self.space.allowed[d.name]:
                a = self.space.canonical({**self.smallest, d.name: v})
                if self._inner(a):
                    return a
        return self.space.sample(rng)  # nothing besides the ends is one step away

    def propose(self) -> list[Arch]:
        if not self.active:
            # Nothing but the sandwich ends in this view (e.g. a single-arch phase).
            return [self.space.sample(self.rng) for _ in range(self.config.best_of)]
        self.target = self._next_bin()
        return [self._draw_in_bin(self.target, self.rng) for _ in range(self.config.best_of)]

    # ----- adaptive probes ------------------------------------------------------------------
    def probe_due(self, step: int) -> bool:
        """Whether the trainer should score the probe archs before phase step ``step``."""
        return bool(self._probe_archs) and step % self.config.probe_every == 0

    @property
    def probe_archs(self) -> list[Arch]:
        """The fixed probe archs, ``probes_per_bin`` per active bin, in bin order."""
        return [dict(a) for a in self._probe_archs]

    def observe_probe(self, losses: Sequence[float]) -> None:
        """Losses of ``probe_archs`` (same order) on the fixed probe batch: update the scores."""
        if len(losses) != len(self._probe_archs):
            raise ValueError(f"expected {len(self._probe_archs)} probe losses, got {len(losses)}")
        values = np.asarray(losses, dtype=np.float64)
        bins = np.asarray(self._probe_bins)
        for b in self.active:
            cur = float(values[bins == b].mean())
            if not math.isfinite(cur):
                continue
            prev = self.last_probe[b]
            if not np.isnan(prev):
                # Relative decrease: a bin of small archs has a larger loss, not more progress.
                gain = (prev - cur) / max(abs(prev), 1e-8)
                if self.probes < 2:
                    # The first decrease starts the EMA, instead of being damped toward zero.
                    self.score[b] = gain
                else:
                    ema = self.config.ema
                    self.score[b] = ema * self.score[b] + (1.0 - ema) * gain
            self.last_probe[b] = cur
        self.probes += 1

    # ----- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            position=self.position,
            target=self.target,
            score=self.score.tolist(),
            last_probe=[None if np.isnan(v) else float(v) for v in self.last_probe],
            probes=self.probes,
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.position = int(state["position"])
        self.target = int(state["target"])
        self.score = np.asarray(state["score"], dtype=np.float64)
        self.last_probe = np.array(
            [np.nan if v is None else v for v in state["last_probe"]], dtype=np.float64
        )
        self.probes = int(state["probes"])


def make_sampler(space: SearchSpace, config: SamplerConfig, seed: int) -> SubnetSampler:
    if config.name == "uniform":
        return UniformSampler(space, config, seed)
    return ComplexityAwareSampler(space, config, seed)
