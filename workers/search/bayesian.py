"""Bayesian multi-objective search with optuna (TPE or GP sampler) through ask/tell.

Parameters: every dimension of the spaces here has numeric, ordered choices (kernel, expand,
depth, width, resolution), so each is an ``IntDistribution``: over the choice value with its
step when the choices are evenly spaced (kernel 3, 5, 7), else over the option index (expand 3,
4, 6), so the samplers see the order instead of unrelated categories. Any other kind of
dimension stays categorical; a dimension with one choice is not a parameter at all.

Define-by-run: a trial first suggests the controlling genes (the depths) and then only the genes
the arch uses, so the samplers never model kernels of blocks that do not exist. Measured archs
enter the in-memory study with ``add_trial`` carrying exactly those active parameters and their
distributions, both on ``tell`` and on ``replay``. TPE runs multivariate with ``group=True``,
which models each set of parameters that occur together (conditional spaces) jointly; the GP
sampler models the parameters every trial has and samples the others independently.

Constraints reach the samplers as each trial's constraint values (violation per constraint, 0
when met); optuna's samplers rank infeasible trials behind feasible ones. A proposal that lands on
an arch already seen is dropped and another drawn, so the same arch is never proposed twice. The
first batch is the constraint-first start of :meth:`Searcher.initial_population`. The sampler is
rebuilt before each ``ask`` with a seed derived from the job seed and the number of archs seen, so
a replayed study continues exactly like an uninterrupted one.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.samplers import BaseSampler, GPSampler, TPESampler
from optuna.trial import Trial, TrialState

from search_spaces.base import Dim, Genotype, SearchSpace
from workers.search.base import Estimate, Searcher
from workers.search.objectives import Constraint, Objective

_VIOLATIONS = "constraint_values"
SAMPLERS = ("tpe", "gp")
ORDERED_KINDS = ("kernel", "expand", "depth", "width", "resolution")


class _Param:
    """How one dimension appears to optuna: a distribution and the index <-> value maps."""

    def __init__(self, dim: Dim):
        self.name = dim.name
        c = dim.choices
        steps = {b - a for a, b in itertools.pairwise(c)}
        self.by_value = dim.kind in ORDERED_KINDS and len(steps) == 1
        self.choices = c
        self.dist: BaseDistribution
        if self.by_value:  # evenly spaced: the value itself, with its step
            self.dist = IntDistribution(c[0], c[-1], step=steps.pop())
        elif dim.kind in ORDERED_KINDS:  # ordered but uneven: the option index
            self.dist = IntDistribution(0, len(c) - 1)
        else:
            self.dist = CategoricalDistribution(list(range(len(c))))

    def suggest(self, trial: Trial) -> int:
        """The option index the trial picks."""
        if self.by_value:
            assert isinstance(self.dist, IntDistribution)
            v = trial.suggest_int(self.name, self.dist.low, self.dist.high, step=self.dist.step)
            return self.choices.index(int(v))
        if isinstance(self.dist, IntDistribution):
            return int(trial.suggest_int(self.name, self.dist.low, self.dist.high))
        return int(trial.suggest_categorical(self.name, list(range(len(self.choices)))))

    def param(self, index: int) -> int:
        return int(self.choices[index]) if self.by_value else int(index)


class BayesianSearcher(Searcher):
    name = "bayesian"

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        *,
        seed: int = 0,
        constraints: Sequence[Constraint] = (),
        sampler: str = "tpe",
        n_startup_trials: int = 10,
        batch_size: int = 10,
        max_retries: int = 10,
        estimates: Mapping[str, Estimate] | None = None,
    ):
        if sampler not in SAMPLERS:
            raise ValueError(f"bayesian sampler {sampler!r} is not known; use one of {SAMPLERS}")
        super().__init__(
            space,
            objectives,
            seed=seed,
            constraints=constraints,
            batch_size=batch_size,
            estimates=estimates,
        )
        self.sampler_name = sampler
        self.n_startup_trials = n_startup_trials
        self.max_retries = max_retries
        optuna.logging.set_verbosity(logging.WARNING)
        # Only dimensions with a real choice are parameters; the others always hold index 0.
        self.params = {i: _Param(d) for i, d in enumerate(space.dims) if len(d.choices) > 1}
        # Define-by-run needs the controlling genes first; a space whose active genes do not
        # follow from them (codec not exact) gets every parameter in every trial, as before.
        self.conditional = self.codec.exact
        ctrl = set(self.codec.controllers.tolist()) if self.conditional else set(self.params)
        self._first = [i for i in self.params if i in ctrl]
        self._rest = [i for i in self.params if i not in ctrl]
        self.distributions: dict[str, BaseDistribution] = {
            p.name: p.dist for p in self.params.values()
        }
        self.study = optuna.create_study(
            directions=["minimize" if o.direction == "min" else "maximize" for o in objectives],
            sampler=self._make_sampler(seed),
            storage=None,
        )

    def _make_sampler(self, seed: int) -> BaseSampler:
        if self.sampler_name == "gp":
            return GPSampler(
                seed=seed,
                n_startup_trials=self.n_startup_trials,
                warn_independent_sampling=False,
            )
        with warnings.catch_warnings():
            # group=True is marked experimental; it is what handles a conditional space.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return TPESampler(
                seed=seed,
                n_startup_trials=self.n_startup_trials,
                multivariate=True,
                group=True,
            )

    def _values(self, ev: dict[str, float]) -> list[float]:
        return [float(ev[o.name]) for o in self.objectives]

    def _constraint_list(self, ev: dict[str, float]) -> list[float]:
        return [c.violation(ev) for c in self.constraints] or [0.0]

    def _active(self, row: np.ndarray) -> np.ndarray:
        return np.asarray(self.codec.active(row[None, :])[0])

    def _suggest(self, trial: Trial) -> Genotype:
        row = np.zeros(self.codec.n_genes, dtype=np.int64)
        for i in self._first:
            row[i] = self.params[i].suggest(trial)
        active = self._active(row) if self.conditional else np.ones(len(row), dtype=bool)
        for i in self._rest:
            if active[i]:
                row[i] = self.params[i].suggest(trial)
        return self.codec.tuples(self.codec.canonical(row[None, :]))[0]

    def _propose(self, n: int, rng: np.random.Generator) -> list[Genotype]:
        if not self._seen:
            return self.initial_population(n, rng)
        self.study.sampler = self._make_sampler(int(rng.integers(2**31 - 1)))
        out: list[Genotype] = []
        retries = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            while len(out) < n and retries <= self.max_retries:
                trial = self.study.ask()
                g = self._suggest(trial)
                # Every proposal is closed as failed at once (samplers ignore failed trials);
                # the canonical arch enters the study as a complete trial when it is told. So
                # the study holds exactly the measured archs, as it does after a replay.
                self.study.tell(trial, state=TrialState.FAIL)
                if g in out or self.seen(g):
                    retries += 1
                    continue
                out.append(g)
        if len(out) < n:  # optuna keeps repeating itself: top up with uniform samples
            out += self.sample_unseen(rng, n - len(out), set(out))
        return out

    def _trial_params(self, g: Genotype) -> tuple[dict[str, int], dict[str, BaseDistribution]]:
        """The parameters a trial of canonical ``g`` has: the active ones only."""
        row = np.asarray(g, dtype=np.int64)
        active = self._active(row) if self.conditional else np.ones(len(row), dtype=bool)
        params: dict[str, int] = {}
        dists: dict[str, BaseDistribution] = {}
        for i, p in self.params.items():
            if active[i]:
                params[p.name] = p.param(int(row[i]))
                dists[p.name] = p.dist
        return params, dists

    def _on_tell(self, genotypes: list[Genotype], evaluations: list[dict[str, float]]) -> None:
        for g, ev in zip(genotypes, evaluations, strict=True):
            params, dists = self._trial_params(g)
            cons = self._constraint_list(ev)
            self.study.add_trial(
                optuna.trial.create_trial(
                    params=params,
                    distributions=dists,
                    values=self._values(ev),
                    user_attrs={_VIOLATIONS: cons},
                    constraints={f"c{i}": v for i, v in enumerate(cons)}
                    if self.constraints
                    else None,
                )
            )

    def state(self) -> dict[str, Any]:
        s = super().state()
        s["sampler"] = self.sampler_name
        s["trials"] = len(self.study.get_trials(states=(TrialState.COMPLETE,)))
        return s
