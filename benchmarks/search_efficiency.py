"""Search efficiency: hypervolume against the number of real evaluations, per searcher.

On a trained digits supernet (``--space mbv3``: the Once-for-All MobileNetV3 space, 46 genes and
about 10^19 subnets, at 8x8 with a stride-1 stem; ``--space mlp``: the elastic MLP), each
searcher (evolution, bayesian, linas) runs with several seeds to ``--budget`` real evaluations
(accuracy on the validation split after BN recalibration, max; MACs, min; each arch evaluated
once and cached, which changes cost, never values). After every batch the hypervolume of the
candidates so far is recorded against a reference point fixed for the whole benchmark.

Random search is the baseline: its runs (all seeds, to ``--random-budget``) are pooled, and its
curve is the *expected* hypervolume of ``m`` evaluations, estimated over many random subsets of
size ``m`` of the pooled evaluations, with the 5th and 95th percentiles as its spread. For each
searcher the benchmark reports how many random evaluations match its median hypervolume at 100:
the published target (DyNAS-T) is the best searcher at 100 matching random at 800 (8x).

Two reference points: ``loose`` (accuracy 0, MACs of the largest arch x 1.1) where most of the
volume is area every searcher covers at once, and ``tight`` (accuracy: 5th percentile of 100
seeded random archs, measured before any run) that shows the differences at the top.

    python -m benchmarks.search_efficiency --space mbv3     # trains the supernet once (~2 min)
    python -m benchmarks.search_efficiency                  # MLP space
    python -m benchmarks.search_efficiency --checkpoint runs/x/final.pt
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

from benchmarks._common_training import RESULTS, write_result
from search_spaces import get_space
from search_spaces.base import SearchSpace
from search_spaces.nn import Supernet
from workers.data import load_dataset, space_options_for
from workers.data.base import DatasetSplits
from workers.evaluation import SubnetEvaluator
from workers.search import Objective, hypervolume, make_searcher, reference_point
from workers.training import default_config, load_checkpoint, train_supernet
from workers.training.cli import CPU_WIDTH_MULT

MLP_SPACE: dict[str, Any] = {
    "id": "mlp",
    "in_features": 64,
    "num_classes": 10,
    "widths": [16, 32, 48, 64, 96, 128, 192, 256],
    "depths": [1, 2, 3, 4],
}
OBJECTIVES = [Objective("accuracy", "max"), Objective("flops", "min")]
DIRS = ["max", "min"]


def space_spec(space: str, data: DatasetSplits) -> dict[str, Any]:
    """The benchmark's space: the MLP above, or mbv3 fitted to the data as the training CLI
    builds it (its CPU width)."""
    if space == "mlp":
        return dict(MLP_SPACE)
    return {"id": "mbv3", **space_options_for("mbv3", data), "width_mult": CPU_WIDTH_MULT}


def trained_supernet(
    checkpoint: Path | None,
    run_dir: Path,
    seed: int = 0,
    val_fraction: float = 0.15,
    space: str = "mlp",
) -> tuple[SearchSpace, Supernet, DatasetSplits, dict[str, Any]]:
    """Load ``checkpoint`` or train (once; reused from ``run_dir``) a supernet of ``space`` on
    digits with the default config (``val_fraction`` of the images are the validation split)."""
    data = load_dataset("digits", seed=0, val_fraction=val_fraction)
    info: dict[str, Any] = {"splits": data.sizes()}
    if checkpoint is None:
        checkpoint = run_dir / "final.pt"
        if not checkpoint.is_file():
            sp = get_space(**space_spec(space, data))
            t0 = time.perf_counter()
            train_supernet(sp, data, default_config(sp, data), run_dir=run_dir, seed=seed)
            info["train_seconds"] = time.perf_counter() - t0
        info["trained_here"] = True
    sp, net = load_checkpoint(checkpoint)
    info.update({"checkpoint": str(checkpoint), "space": sp.spec(), "dataset": "digits"})
    return sp, net, data, info


def front_hv(vals: np.ndarray, ref: list[float]) -> float:
    """Hypervolume of the front of (accuracy max, MACs min) rows; the front by one sort (MACs
    up, accuracy down), which matches ``pareto_mask`` on two objectives and costs n log n."""
    if not len(vals):
        return 0.0
    order = np.lexsort((-vals[:, 0], vals[:, 1]))
    keep, best = [], -np.inf
    for i in order:
        if vals[i, 0] > best:
            keep.append(i)
            best = vals[i, 0]
    return float(hypervolume(vals[keep], DIRS, ref))


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
    genes: list[tuple[int, ...]] = []
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
        genes += [space.encode(a) for a in archs]
        pts = np.asarray(vals)
        for k, ref in refs.items():
            curves[k].append([len(vals), front_hv(pts, ref)])
    return {
        "algorithm": algo,
        "seed": seed,
        "curves": curves,
        "seconds": time.perf_counter() - t0,
        "values": vals,
        "genotypes": genes,
    }


def random_curve(
    pool: np.ndarray,
    marks: list[int],
    ref: list[float],
    draws: int,
    seed: int = 0,
    extra: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Expected hypervolume of ``m`` random evaluations: the mean over ``draws`` random subsets
    of size ``m`` of the pooled random evaluations, with the 5th and 95th percentiles. With
    ``extra`` (rows always included, e.g. the smallest network) the subsets hold ``m`` - len(extra)
    random rows plus those."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, float]] = {}
    fixed = np.zeros((0, pool.shape[1])) if extra is None else np.asarray(extra, dtype=float)
    for m in marks:
        k = m - len(fixed)
        if k > len(pool) or k < 0:
            continue
        hv = [
            front_hv(np.concatenate([pool[rng.choice(len(pool), k, replace=False)], fixed]), ref)
            for _ in range(draws)
        ]
        out[str(m)] = {
            "mean": float(np.mean(hv)),
            "p5": float(np.percentile(hv, 5)),
            "p95": float(np.percentile(hv, 95)),
        }
    return out


def random_evaluations_to_match(curve: dict[str, dict[str, float]], hv: float) -> int | None:
    """The fewest random evaluations (on the curve's grid) whose expected hypervolume reaches
    ``hv``; None when even the largest does not."""
    for m in sorted(curve, key=int):
        if curve[m]["mean"] >= hv:
            return int(m)
    return None


def summarise(
    runs: list[dict[str, Any]],
    algos: list[str],
    ref_name: str,
    marks: list[int],
    rand: dict[str, dict[str, float]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    summary: dict[str, dict[str, float]] = {}
    spread: dict[str, dict[str, list[float]]] = {}
    for algo in algos:
        curves = [r["curves"][ref_name] for r in runs if r["algorithm"] == algo]
        summary[algo], spread[algo] = {}, {}
        for m in marks:
            vals = [dict((int(k), h) for k, h in c).get(m) for c in curves]
            if vals and all(v is not None for v in vals):
                got = [float(v) for v in vals if v is not None]
                summary[algo][str(m)] = float(np.median(got))
                spread[algo][str(m)] = [min(got), max(got)]
    top = max(int(m) for m in rand)
    matched = {a: random_evaluations_to_match(rand, summary[a].get("100", np.inf)) for a in algos}
    best = max(algos, key=lambda a: summary[a].get("100", -1.0))
    best100 = summary[best].get("100", float("nan"))
    target = {
        "best_searcher": best,
        "best_at_100": best100,
        "random_at_100": rand.get("100", {}).get("mean"),
        f"random_at_{top}": rand[str(top)]["mean"],
        f"best_at_100_over_random_at_{top}": best100 / rand[str(top)]["mean"],
        # None: even random at the largest budget falls short of the searcher's value at 100.
        "random_evaluations_to_match_at_100": matched,
    }
    need = matched[best]
    target["met"] = need is None or need >= 800
    return {"median": summary, "min_max_over_seeds": spread}, target


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--space", choices=("mlp", "mbv3"), default="mlp")
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--run-dir", type=Path, default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    # Random runs are pooled: 3 x 400 evaluations give the expected hypervolume up to 800.
    p.add_argument("--random-budget", type=int, default=400, help="evaluations per random run")
    p.add_argument("--random-curve", type=int, default=800, help="largest random budget shown")
    # A prefix of the one calibration rule's subset (workers.bn): cheaper per evaluation, and
    # every searcher is scored by the same deterministic evaluator.
    p.add_argument("--bn-images", type=int, default=500)
    p.add_argument("--budget", type=int, default=400)
    p.add_argument("--batch", type=int, default=25)
    p.add_argument("--linas-evaluations", type=int, default=20000)
    p.add_argument("--draws", type=int, default=300, help="random subsets per budget")
    p.add_argument("--algorithms", nargs="+", default=["evolution", "bayesian", "linas"])
    p.add_argument(
        "--random-only",
        action="store_true",
        help="redo the random baseline, keep the searchers' runs of the last result file",
    )
    args = p.parse_args()
    torch.set_num_threads(1)
    run_dir = args.run_dir or Path(tempfile.gettempdir()) / "nas-bench" / (
        "supernet" if args.space == "mlp" else f"supernet-{args.space}"
    )
    space, net, data, info = trained_supernet(args.checkpoint, run_dir, space=args.space)
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
        "linas": {"evaluations": args.linas_evaluations, "population": 50, "n_init": 50},
    }
    runs = []
    # Random evaluations of all seeds, one entry per distinct arch.
    pooled: dict[tuple[int, ...], list[float]] = {}
    previous: list[dict[str, Any]] = []
    stem = "search_efficiency" if args.space == "mlp" else f"search_efficiency_{args.space}"
    if args.random_only:
        # Keep the searchers' runs of the last result file; redo only the random baseline.
        old = json.loads((RESULTS / f"{stem}.json").read_text())
        previous = [r for r in old["runs"] if r["algorithm"] != "random"]
    for algo in ["random", *([] if args.random_only else args.algorithms)]:
        budget = args.random_budget if algo == "random" else args.budget
        for seed in args.seeds:
            r = run_one(algo, seed, space, ev, budget, args.batch, refs, options[algo])
            print(algo, seed, f"{r['seconds']:.1f}s", "HV", r["curves"]["tight"][-1], flush=True)
            values, genes = r.pop("values"), r.pop("genotypes")
            if algo == "random":
                pooled.update(zip(genes, values, strict=True))
            runs.append(r)
    runs += previous
    pool = np.asarray(list(pooled.values()))
    # The searchers' first population holds the smallest network (constraint-first start),
    # which the sandwich rule trains every step: random search plus that one network is the
    # fairer baseline, reported beside plain random search.
    smallest = space.min_arch()
    small_row = np.asarray(
        [[ev.evaluate([smallest])[0]["accuracy"], float(space.flops(smallest))]], dtype=float
    )
    marks = [50, 100, 200, 400]
    top = min(args.random_curve, len(pool))
    grid = sorted({*range(25, top + 1, 25), *(m for m in marks if m <= top)})
    results = {}
    for name, rp in refs.items():
        rand = random_curve(pool, grid, rp, args.draws)
        rand_small = random_curve(pool, grid, rp, args.draws, extra=small_row)
        summary, target = summarise(runs, list(args.algorithms), name, marks, rand)
        _, target_small = summarise(runs, list(args.algorithms), name, marks, rand_small)
        results[name] = {
            "searchers": summary,
            "random_expected": rand,
            "random_plus_smallest_expected": rand_small,
            "target": target,
            "target_vs_random_plus_smallest": target_small,
        }
    payload = {
        "setup": {
            **info,
            "objectives": [str(o) for o in OBJECTIVES],
            "reference_points": refs,
            "batch": args.batch,
            "seeds": args.seeds,
            "random_budget": args.random_budget,
            "random_curve": args.random_curve,
            "bn_images": args.bn_images,
            "random_pool": len(pool),
            "budget": args.budget,
            "draws": args.draws,
            "options": options,
            "space_size": space.size(),
        },
        "results": results,
        "evaluator": ev.stats(),
        "runs": runs,
    }
    out = write_result("search_efficiency", payload, stem)
    for name, r in results.items():
        print(name, json.dumps(r["searchers"]["median"], indent=1))
        print(name, json.dumps(r["target"], indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
