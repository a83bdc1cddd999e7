"""LINAS inner loop: seconds of one ask with 20,000 predictor evaluations, and variation stats.

Setting (the digits MobileNetV3 space, 46 genes of 3 choices, ~10^19 archs):
``get_space("mbv3", num_classes=10, in_channels=1, small_input=True, resolutions=(8,))``,
objectives accuracy (max) and MACs (min), a synthetic accuracy (saturating in MACs plus a
deterministic per-genotype wiggle) so that no supernet is needed. LINAS is told 100 archs (its
constraint-first start), then asked for 50 archs three times without telling (each ask refits
the predictor on the same 100 archs and runs the full inner NSGA-II); the figure is the median.
The breakdown splits each ask into predictor fitting, predictor / analytic evaluation inside the
inner loop, and everything else there (variation, canonicalisation, de-duplication, survival).

Variation stats: evolution (population 50) for 10 generations on the same problem; for every
proposal after the first population: whether it is new (never told, not a random fill), how many
genes (canonical genotype) it differs from the nearest told arch, and whether that is <= 4.

    python -m benchmarks.linas_inner                 # gp and mlp, 20,000 evaluations
    python -m benchmarks.linas_inner --predictors gp --evaluations 5000
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import torch

from benchmarks._common_training import write_result
from search_spaces import get_space
from search_spaces.base import Arch, SearchSpace
from workers.search import Objective, make_searcher
from workers.search.variation import distance

SPACE: dict[str, Any] = {
    "id": "mbv3",
    "num_classes": 10,
    "in_channels": 1,
    "small_input": True,
    "resolutions": [8],
}
OBJECTIVES = [Objective("accuracy", "max"), Objective("flops", "min")]


def synthetic(space: SearchSpace, arch: Arch) -> dict[str, float]:
    f = space.flops(arch)
    g = np.asarray(space.encode(arch), dtype=float)
    wiggle = 0.02 * np.sin(g @ np.arange(1, g.size + 1))
    scale = space.flops(space.max_arch()) / 4
    return {"accuracy": float(1 - np.exp(-f / scale) + wiggle), "flops": float(f)}


def linas_timing(
    space: SearchSpace, predictor: str, evaluations: int, repeats: int
) -> dict[str, Any]:
    s = make_searcher(
        "linas",
        space,
        OBJECTIVES,
        seed=0,
        batch_size=50,
        n_init=100,
        evaluations=evaluations,
        predictor=predictor,
    )
    for _ in range(2):
        archs = s.ask(50)
        s.tell(archs, [synthetic(space, a) for a in archs])
    runs: list[dict[str, float]] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        s.ask(50)
        runs.append({"total_s": time.perf_counter() - t0, **s.timings})  # type: ignore[attr-defined]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    return {
        "predictor": predictor,
        "told": len(s.genotypes),
        "inner_evaluations": evaluations,
        "median": med,
        "runs": runs,
        "fast_predictors": s.last_fit.get("fast_predictors"),  # type: ignore[attr-defined]
    }


def variation_stats(space: SearchSpace, generations: int, population: int) -> dict[str, Any]:
    s = make_searcher("evolution", space, OBJECTIVES, seed=0, population=population)
    told: list[tuple[int, ...]] = []
    dists: list[int] = []
    new = 0
    for gen in range(generations):
        before = s.state()["random_fill"]
        archs = s.ask(population)
        genes = [space.encode(a) for a in archs]
        if gen:
            d = distance(s.codec, s.codec.matrix(genes), s.codec.matrix(told)).min(axis=1)
            dists += d.tolist()
            fresh = len(set(genes) - set(told))
            new += fresh - (s.state()["random_fill"] - before)
        s.tell(archs, [synthetic(space, a) for a in archs])
        told += genes
    arr = np.asarray(dists)
    return {
        "searcher": "evolution",
        "population": population,
        "generations": generations,
        "proposals": int(arr.size),
        "fraction_new": new / arr.size,
        "mean_genes_from_nearest_told": float(arr.mean()),
        "fraction_within_4_genes": float((arr <= 4).mean()),
        "random_fill": s.state()["random_fill"],
        "histogram_genes": {
            int(k): int(v) for k, v in zip(*np.unique(arr, return_counts=True), strict=True)
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictors", nargs="+", default=["gp", "mlp"])
    ap.add_argument("--evaluations", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--generations", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from threadpoolctl import threadpool_limits

    space = get_space(**SPACE)
    with threadpool_limits(limits=1):  # a shared 2-core machine: one thread for everything
        timing = [linas_timing(space, p, args.evaluations, args.repeats) for p in args.predictors]
        stats = variation_stats(space, args.generations, 50)
    for t in timing:
        m = t["median"]
        print(
            f"linas/{t['predictor']}: {m['total_s']:.2f} s per ask with {t['inner_evaluations']} "
            f"inner evaluations (fit {m['fit_s']:.2f}, inner predict {m['inner_predict_s']:.2f}, "
            f"inner variation/dedup/survival {m['inner_other_s']:.2f})"
        )
    print(
        f"evolution: {stats['fraction_new']:.3f} new, "
        f"{stats['mean_genes_from_nearest_told']:.2f} genes from the nearest told arch, "
        f"{stats['fraction_within_4_genes']:.3f} within 4 genes"
    )
    out = write_result(
        "linas_inner",
        {"space": SPACE, "threads": 1, "linas": timing, "variation": stats},
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
