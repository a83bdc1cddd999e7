"""Bayesian multi-objective search with optuna (TPE or GP sampler) through ask/tell.

Each dimension is a categorical parameter. Constraints reach the samplers as each trial's
constraint values (violation per constraint, 0 when met); optuna's samplers rank infeasible trials
behind feasible ones. Optuna proposes raw archs; they are canonicalised,
and a proposal that lands on an arch already seen is dropped and another drawn, so the same arch
is never proposed twice. Measured archs enter the in-memory study with ``add_trial`` (canonical
params), both on ``tell`` and on ``replay``. The sampler is rebuilt before each ``ask`` with a
seed derived from the job seed and the number of archs seen, so a replayed study continues
exactly like an uninterrupted one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, GPSampler, TPESampler
from optuna.trial import TrialState

from search_spaces.base import Genotype, SearchSpace
from workers.search.base import Searcher
from workers.search.objectives import Constraint, Objective

_VIOLATIONS = "constraint_values"
SAMPLERS = ("tpe", "gp")


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
    ):
        if sampler not in SAMPLERS:
            raise ValueError(f"bayesian sampler {sampler!r} is not known; use one of {SAMPLERS}")
        super().__init__(
            space, objectives, seed=seed, constraints=constraints, batch_size=batch_size
        )
        self.sampler_name = sampler
        self.n_startup_trials = n_startup_trials
        self.max_retries = max_retries
        optuna.logging.set_verbosity(logging.WARNING)
        self.distributions: dict[str, BaseDistribution] = {
            d.name: CategoricalDistribution(list(d.choices)) for d in space.dims
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
        return TPESampler(
            seed=seed,
            n_startup_trials=self.n_startup_trials,
            multivariate=True,
        )

    def _values(self, ev: dict[str, float]) -> list[float]:
        return [float(ev[o.name]) for o in self.objectives]

    def _constraint_list(self, ev: dict[str, float]) -> list[float]:
        return [c.violation(ev) for c in self.constraints] or [0.0]

    def _propose(self, n: int, rng: np.random.Generator) -> list[Genotype]:
        self.study.sampler = self._make_sampler(int(rng.integers(2**31 - 1)))
        out: list[Genotype] = []
        retries = 0
        while len(out) < n and retries <= self.max_retries:
            trial = self.study.ask(self.distributions)
            g = self.space.encode({k: int(v) for k, v in trial.params.items()})
            # Every proposal is closed as failed at once (samplers ignore failed trials); the
            # canonical arch enters the study as a complete trial when it is told. So the study
            # holds exactly the measured archs, as it does after a replay.
            self.study.tell(trial, state=TrialState.FAIL)
            if g in out or self.seen(g):
                retries += 1
                continue
            out.append(g)
        if len(out) < n:  # optuna keeps repeating itself: top up with uniform samples
            out += self.sample_unseen(rng, n - len(out), set(out))
        return out

    def _on_tell(self, genotypes: list[Genotype], evaluations: list[dict[str, float]]) -> None:
        for g, ev in zip(genotypes, evaluations, strict=True):
            arch = self.space.decode(g)
            cons = self._constraint_list(ev)
            self.study.add_trial(
                optuna.trial.create_trial(
                    params={k: arch[k] for k in self.distributions},
                    distributions=self.distributions,
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
