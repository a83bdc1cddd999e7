"""Search efficiency: hypervolume against the number of real evaluations, per searcher.

On a trained digits supernet, each searcher (random, evolution, bayesian, linas) runs with
several seeds; after every batch the hypervolume of the measured candidates so far (accuracy on
the validation split after BN recalibration, max; MACs, min) is recorded against a reference
point fixed for the whole benchmark (accuracy 0, MACs of the largest arch * 1.1). Because most
subnets of a trained supernet are far above accuracy 0, that volume is dominated by area every
searcher covers at once; a second, tight reference point (accuracy: 5th percentile of 100
seeded random archs, measured before any run) shows the differences at the top of the front.
The target of
the published work: the best searcher at 100 real evaluations reaches the hypervolume random
search reaches at 800.

    python -m benchmarks.search_efficiency                       # trains an MLP supernet (~1 min)
    python -m benchmarks.search_efficiency --checkpoint runs/x/final.pt

Evaluations of one arch are deterministic (fixed BN subset), so one evaluator cache serves every
run; that changes cost, never values.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks._common_training import write_result
from search_spaces import get_space
from search_spaces.base import SearchSpace
from search_spaces.nn import Supernet
from workers.data import load_dataset
from workers.data.base import DatasetSplits
from workers.evaluation import SubnetEvaluator
from workers.search import Objective, hypervolume, make_searcher, pareto_mask, reference_point
from workers.training import default_config, load_checkpoint, train_supernet

MLP_SPACE: dict[str, Any] = {
    "id": "mlp",
    "in_features": 64,
    "num_classes": 10,
    "widths": [16, 32, 48, 64, 96, 128, 192, 256],
    "depths": [1, 2, 3, 4],
}
OBJECTIVES = [Objective("accuracy", "max"), Objective("flops", "min")]


def trained_supernet(
    checkpoint: Path | None, run_dir: Path, seed: int = 0, val_fraction: float = 0.15
) -> tuple[SearchSpace, Supernet, DatasetSplits, dict[str, Any]]:
    """Load ``checkpoint`` or train (once; reused from ``run_dir``) an MLP supernet on digits
    (``val_fraction`` of the images are the validation split)."""
    data = load_dataset("digits", seed=0, val_fraction=val_fraction)
    info: dict[str, Any] = {"splits": data.sizes()}
    if checkpoint is None:
        checkpoint = run_dir / "final.pt"
        if not checkpoint.is_file():
            space = get_space(**MLP_SPACE)
            t0 = time.perf_counter()
            train_supernet(space, data, default_config(space, data), run_dir=run_dir, seed=seed)
            info["train_seconds"] = time.perf_counter() - t0
        info["trained_here"] = True
    space, net = load_checkpoint(checkpoint)
    info.update({"checkpoint": str(checkpoint), "space": space.spec(), "dataset": "digits"})
    return space, net, data, info


def run_one(
    algo: str,
    seed: int,
    space: SearchSpace,
    ev: SubnetEvaluator,
    budget: int,
    batch: int,
    refs: dict[str, list[float]],
    options: dict[str, Any],
) -> dict[str, Any]:
    s = make_searcher(algo, space, OBJECTIVES, seed=seed, batch_size=batch, **options)
    vals: list[list[float]] = []
    curves: dict[str, list[list[float]]] = {k: [] for k in refs}
    t0 = time.perf_counter()
    while len(vals) < budget:
        archs = s.ask(min(batch, budget - len(vals)))
        if not archs:
            break
        evs = [
            {**r, "flops": float(space.flops(a))}
            for r, a in zip(ev.evaluate(archs), archs, strict=True)
        ]
        s.tell(archs, evs)
        vals += [[e["accuracy"], e["flops"]] for e in evs]
        pts = np.asarray(vals)
        front = pts[pareto_mask(pts, ["max", "min"])]
        for k, ref in refs.items():
            curves[k].append([len(vals), hypervolume(front, ["max", "min"], ref)])
    return {
        "algorithm": algo,
        "seed": seed,
        "curves": curves,
        "seconds": time.perf_counter() - t0,
    }


def summarise(
    runs: list[dict[str, Any]], algos: list[str], ref_name: str, marks: list[int]
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    summary: dict[str, dict[str, float]] = {}
    for algo in algos:
        curves = [r["curves"][ref_name] for r in runs if r["algorithm"] == algo]
        summary[algo] = {}
        for m in marks:
            vals = [dict((int(k), h) for k, h in c).get(m) for c in curves]
            if all(v is not None for v in vals):
                summary[algo][str(m)] = float(np.median([float(v) for v in vals if v is not None]))
    rand = summary["random"]
    best = max((a for a in algos if a != "random"), key=lambda a: summary[a].get("100", -1.0))
    best100 = summary[best].get("100", float("nan"))
    needed = next((m for m in marks if str(m) in rand and rand[str(m)] >= best100), None)
    target = {
        "best_searcher": best,
        "best_at_100": best100,
        "random_at_100": rand.get("100"),
        "random_at_800": rand.get("800"),
        "best_at_100_over_random_at_800": best100 / rand["800"] if "800" in rand else None,
        "random_evaluations_to_match_best_at_100": needed,
        "searchers_at_200_vs_random_at_800": {
            a: summary[a].get("200") for a in algos if a != "random"
        },
    }
    return summary, target


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument(
        "--run-dir", type=Path, default=Path(tempfile.gettempdir()) / "nas-bench" / "supernet"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--random-budget", type=int, default=800)
    p.add_argument("--budget", type=int, default=200)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--linas-evaluations", type=int, default=20000)
    p.add_argument("--bn-images", type=int, default=500)
    args = p.parse_args()
    torch.set_num_threads(1)
    space, net, data, info = trained_supernet(args.checkpoint, args.run_dir)
    ev = SubnetEvaluator(net, data, seed=0, bn_images=args.bn_images)
    ref = reference_point(OBJECTIVES, space)
    probe_rng = np.random.default_rng(1234)
    probe = [space.sample(probe_rng) for _ in range(100)]
    tight_acc = float(np.percentile([r["accuracy"] for r in ev.evaluate(probe)], 5))
    refs = {"loose": ref, "tight": [tight_acc, ref[1]]}
    options: dict[str, dict[str, Any]] = {
        "random": {},
        "evolution": {"population": 50},
        "bayesian": {"n_startup_trials": 20},
        "linas": {"evaluations": args.linas_evaluations, "population": 50, "n_init": args.batch},
    }
    runs = []
    for algo in ("random", "evolution", "bayesian", "linas"):
        budget = args.random_budget if algo == "random" else args.budget
        for seed in args.seeds:
            r = run_one(algo, seed, space, ev, budget, args.batch, refs, options[algo])
            print(algo, seed, f"{r['seconds']:.1f}s", "HV", r["curves"]["tight"][-1])
            runs.append(r)
    marks = [20, 40, 60, 100, 200, 400, 800]
    algos = list(options)
    results = {name: summarise(runs, algos, name, marks) for name in refs}
    payload = {
        "setup": {
            **info,
            "objectives": [str(o) for o in OBJECTIVES],
            "reference_points": refs,
            "batch": args.batch,
            "seeds": args.seeds,
            "random_budget": args.random_budget,
            "budget": args.budget,
            "options": options,
            "bn_images": args.bn_images,
            "space_size": space.size(),
        },
        "median_hypervolume": {name: r[0] for name, r in results.items()},
        "target": {name: r[1] for name, r in results.items()},
        "evaluator": ev.stats(),
        "runs": runs,
    }
    out = write_result("search_efficiency", payload)
    print(json.dumps(payload["median_hypervolume"], indent=1))
    print(json.dumps(payload["target"], indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
