"""Uniform vs complexity-aware subnet sampling at an equal training budget.

Same space, data, schedule and number of subnets per step for every sampler; only the choice
of the sampled subnets differs. Each trained supernet is scored on a fixed set of archs (the
same for every run) on the test split, BN recalibrated by the shared rule (``workers.bn``) and
not fine-tuned: accuracy per FLOPs quartile of the set, and the hypervolume of the (accuracy
max, FLOPs min) points against a fixed reference point (accuracy 0, 1.1 x the set's largest
FLOPs), divided by the reference FLOPs so that it lies in [0, 1].

``--space mlp`` (default): a wide MLP space and a schedule of its own; two arch sets (FLOPs
quantiles of random archs including both ends, and evenly spaced FLOPs); mean and std over
seeds. ``--space mbv3``: the digits MobileNetV3 space (``space_options_for``, width 0.35 as the
CLI trains on a CPU) with the default CPU schedule (``default_config``, ``--epochs-scale`` to
shrink it); 40 archs stratified over the FLOPs quantiles, the smallest and largest left out
(the sandwich rule trains those every step whatever the sampler); median over seeds with the
spread, and per-seed differences to uniform. The full-network phase does not involve the
sampler, so on mbv3 it is trained once per seed and shared (``train_sharing_first_phase``: an
exact resume).

    python -m benchmarks.sampler_comparison [--space mlp|mbv3] [--seeds 0 1 2] [--archs N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks._common_training import (
    bn_subset,
    extracted_test_accuracy,
    quantile_archs,
    spread_archs,
    train_sharing_first_phase,
    write_result,
)
from search_spaces import SearchSpace, get_space
from workers.data import load_dataset, space_options_for
from workers.evaluation import SubnetEvaluator
from workers.search import hypervolume
from workers.training import (
    PhaseConfig,
    SamplerConfig,
    TrainConfig,
    default_config,
    load_checkpoint,
    train_supernet,
)

# Two fixed arch sets: quantiles of random archs (mid-heavy) and evenly spaced FLOPs.
ARCH_SETS = ("quantile", "flops")
VARIANTS: dict[str, dict[str, Any]] = {
    "uniform": {"name": "uniform"},
    "ca-uniform-bins": {"name": "complexity-aware", "policy": "uniform"},
    "ca-walk": {"name": "complexity-aware", "policy": "walk"},
    "ca-adaptive": {"name": "complexity-aware", "policy": "adaptive"},
    "ca-uniform-bins-best-of-3": {"name": "complexity-aware", "policy": "uniform", "best_of": 3},
}
# mbv3: uniform against each bin policy (best-of-k is a per-draw option, not a policy, and
# would add a quarter to the hour this run may take; pass --variants to include it).
MBV3_VARIANTS = ("uniform", "ca-uniform-bins", "ca-walk", "ca-adaptive")
QUARTILES = ("q1_smallest", "q2", "q3", "q4_largest")


def schedule(epochs_scale: float) -> TrainConfig:
    """MLP: full network, then everything elastic at once with 2 sampled subnets per step:
    the phase where the sampler decides what is trained."""
    phases = [
        PhaseConfig(name="full", epochs=4, lr=0.1, random_subnets=0, sandwich=False),
        PhaseConfig(
            name="elastic-depth", epochs=3, lr=0.05, unlock={"depth": []}, random_subnets=2
        ),
        PhaseConfig(
            name="elastic-width",
            epochs=8,
            lr=0.05,
            unlock={"depth": [], "width": []},
            random_subnets=2,
        ),
    ]
    cfg = TrainConfig(phases=phases, batch_size=64, bn_images=500)
    return cfg.scaled(epochs_scale) if epochs_scale != 1.0 else cfg


def _hv(accs: np.ndarray, flops: np.ndarray, ref: list[float]) -> float:
    # Normalised by the reference FLOPs: a value in [0, 1].
    return hypervolume(np.stack([accs, flops], 1), ["max", "min"], ref) / ref[1]


def run_mlp(args: argparse.Namespace) -> None:
    t_start = time.perf_counter()
    base = schedule(args.epochs_scale)
    variants = args.variants or list(VARIANTS)
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in variants}
    macs: dict[str, np.ndarray] = {}
    ref: list[float] = []
    n_archs = args.archs or 32
    for seed in args.seeds:
        data = load_dataset("digits", seed=seed)
        # A wide MLP space: per-dimension sampling concentrates hard on mid-size subnets.
        space = get_space(
            "mlp",
            **space_options_for("mlp", data),
            widths=[16, 32, 64, 128, 256],
            depths=[1, 2, 3, 4],
        )
        sets = {m: spread_archs(space, n_archs, seed=1234, mode=m) for m in ARCH_SETS}
        macs = {m: np.array([space.flops(a) for a in sets[m]], dtype=float) for m in ARCH_SETS}
        ref = [0.0, 1.1 * float(macs["quantile"].max())]
        bn_x = bn_subset(data, base.bn_images, seed)
        for name in variants:
            cfg = base.model_copy(update={"sampler": SamplerConfig(**VARIANTS[name])})
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                res = train_supernet(space, data, cfg, run_dir=Path(tmp), seed=seed)
                secs = time.perf_counter() - t0
                _, net = load_checkpoint(res.final_path)
            hist = [
                h["flops_histogram"]["counts"] for h in res.history if h["phase"] == "elastic-width"
            ]
            row: dict[str, Any] = {
                "seed": seed,
                "train_seconds": secs,
                "sampled_flops_histogram_last_phase": np.sum(hist, axis=0).tolist(),
            }
            for m in ARCH_SETS:
                accs = np.array([extracted_test_accuracy(net, a, data, bn_x) for a in sets[m]])
                q = len(accs) // 4
                row[m] = {
                    "smallest_quartile_acc": float(accs[:q].mean()),
                    "largest_quartile_acc": float(accs[-q:].mean()),
                    "mean_acc": float(accs.mean()),
                    "hypervolume": _hv(accs, macs[m], ref),
                    "accuracies": accs.tolist(),
                }
            results[name].append(row)
            for m in ARCH_SETS:
                r = row[m]
                print(
                    f"seed {seed} {name:26s} {m:8s} small-q {r['smallest_quartile_acc']:.4f} "
                    f"large-q {r['largest_quartile_acc']:.4f} hv {r['hypervolume']:.4f} "
                    f"({secs:.0f}s)",
                    flush=True,
                )
    keys = ("smallest_quartile_acc", "largest_quartile_acc", "mean_acc", "hypervolume")
    summary: dict[str, Any] = {m: {} for m in ARCH_SETS}
    for m in ARCH_SETS:
        for name, rows in results.items():
            summary[m][name] = {
                k: {
                    "mean": float(np.mean([r[m][k] for r in rows])),
                    "std": float(np.std([r[m][k] for r in rows])),
                }
                for k in keys
            }
    best_hv = {}
    for m in ARCH_SETS:
        hv = {n: v["hypervolume"]["mean"] for n, v in summary[m].items()}
        best_hv[m] = max(hv, key=lambda n: hv[n])
    out = write_result(
        "sampler_comparison",
        {
            "space": "mlp widths [16,32,64,128,256] depths [1,2,3,4]",
            "dataset": "digits",
            "seeds": args.seeds,
            "arch_macs": {m: [int(v) for v in macs[m].tolist()] for m in ARCH_SETS},
            "reference_point": {"accuracy": ref[0], "macs": ref[1]},
            "config": base.model_dump(),
            "runs": results,
            "summary": summary,
            "best_by_hypervolume": best_hv,
            "wall_seconds": time.perf_counter() - t_start,
            "notes": "equal budget: same schedule, steps and subnets per step; test accuracy of "
            "extracted subnets after BN recalibration; hypervolume normalised by the "
            "reference MACs.",
        },
    )
    for m in ARCH_SETS:
        for name, s in summary[m].items():
            print(m, name, {k: round(v["mean"], 4) for k, v in s.items()})
    print(f"best by hypervolume: {best_hv}; wrote {out}")


def _mbv3_space(data: Any, width_mult: float) -> SearchSpace:
    return get_space("mbv3", **space_options_for("mbv3", data), width_mult=width_mult)


def _stats(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    return {
        "median": float(np.median(v)),
        "min": float(v.min()),
        "max": float(v.max()),
        "spread": float(v.max() - v.min()),
    }


def run_mbv3(args: argparse.Namespace) -> None:
    t_start = time.perf_counter()
    variants = args.variants or list(MBV3_VARIANTS)
    if variants[0] != "uniform":
        variants = ["uniform", *[v for v in variants if v != "uniform"]]
    n_archs = args.archs or 40
    probe = load_dataset("digits", seed=args.seeds[0])
    space = _mbv3_space(probe, args.width_mult)  # the same for every seed (same input shape)
    archs = quantile_archs(space, n_archs, seed=1234)
    flops = np.array([space.flops(a) for a in archs], dtype=float)
    ref = [0.0, 1.1 * float(flops.max())]
    q = np.array_split(np.arange(len(archs)), 4)  # FLOPs quartiles of the set (sorted)
    base = default_config(space, probe)
    if args.epochs_scale != 1.0:
        base = base.scaled(args.epochs_scale)
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in variants}
    for seed in args.seeds:
        data = load_dataset("digits", seed=seed)
        seed_space = _mbv3_space(data, args.width_mult)
        assert seed_space.spec() == space.spec()
        cfg_seed = default_config(seed_space, data)
        if args.epochs_scale != 1.0:
            cfg_seed = cfg_seed.scaled(args.epochs_scale)
        configs = {
            name: cfg_seed.model_copy(update={"sampler": SamplerConfig(**VARIANTS[name])})
            for name in variants
        }
        with tempfile.TemporaryDirectory() as tmp:
            trained = train_sharing_first_phase(seed_space, data, configs, seed, Path(tmp))
            for name in variants:
                res, secs = trained[name]
                _, net = load_checkpoint(res.final_path)
                t0 = time.perf_counter()
                # One rule: the default calibration images for the run seed (workers.bn).
                scores = SubnetEvaluator(net, data, seed=seed).evaluate(archs, split="test")
                accs = np.array([s["accuracy"] for s in scores])
                # Per elastic phase (one sampler, one set of quantile edges per phase), the
                # counts of every epoch summed.
                hists: dict[str, dict[str, Any]] = {}
                for h in res.history[cfg_seed.phases[0].epochs :]:
                    hist = hists.setdefault(
                        h["phase"], {"edges": h["flops_histogram"]["edges"], "counts": None}
                    )
                    counts = np.asarray(h["flops_histogram"]["counts"])
                    hist["counts"] = counts if hist["counts"] is None else hist["counts"] + counts
                for hist in hists.values():
                    hist["counts"] = [int(c) for c in hist["counts"]]
                row: dict[str, Any] = {
                    "seed": seed,
                    "train_seconds": secs,
                    "eval_seconds": time.perf_counter() - t0,
                    **{k: float(accs[idx].mean()) for k, idx in zip(QUARTILES, q, strict=True)},
                    "mean_acc": float(accs.mean()),
                    "hypervolume": _hv(accs, flops, ref),
                    "accuracies": accs.tolist(),
                    "val_last_epoch": {
                        k: v["accuracy"] for k, v in res.history[-1]["accuracy"].items()
                    },
                    "sampled_flops_histograms": hists,
                }
                runs[name].append(row)
                print(
                    f"seed {seed} {name:16s} q1 {row['q1_smallest']:.4f} q4 "
                    f"{row['q4_largest']:.4f} mean {row['mean_acc']:.4f} hv "
                    f"{row['hypervolume']:.4f} ({secs:.0f}s + {row['eval_seconds']:.0f}s)",
                    flush=True,
                )
    keys = (*QUARTILES, "mean_acc", "hypervolume")
    summary = {name: {k: _stats([r[k] for r in rows]) for k in keys} for name, rows in runs.items()}
    # Paired by seed (same data split, same full-network phase): the sampler's own effect.
    vs_uniform = {
        name: {
            k: _stats([r[k] - u[k] for r, u in zip(rows, runs["uniform"], strict=True)])
            for k in keys
        }
        for name, rows in runs.items()
        if name != "uniform"
    }
    uni = summary["uniform"]
    met = [
        name
        for name in vs_uniform
        if summary[name]["q1_smallest"]["median"] >= uni["q1_smallest"]["median"]
        and summary[name]["hypervolume"]["median"] >= uni["hypervolume"]["median"]
    ]
    out = write_result(
        "sampler_comparison",
        {
            "space": space.spec(),
            "dataset": "digits",
            "seeds": args.seeds,
            "variants": {k: VARIANTS[k] for k in variants},
            "archs": [space.short(a) for a in archs],
            "arch_flops": [int(f) for f in flops],
            "quartile_flops_ranges": [[int(flops[idx].min()), int(flops[idx].max())] for idx in q],
            "reference_point": {"accuracy": ref[0], "flops": ref[1]},
            "config": base.model_dump(),
            "runs": runs,
            "summary": summary,
            "difference_to_uniform_paired_by_seed": vs_uniform,
            "target": "a complexity-aware policy with median q1 (smallest quartile) accuracy "
            "and median hypervolume both >= uniform's",
            "target_met_by": met,
            "wall_seconds": time.perf_counter() - t_start,
            "notes": "equal budget: default CPU schedule, same epochs, steps and subnets per "
            "step; the full-network phase is trained once per seed and shared (exact resume); "
            "test accuracy of the supernet's subnets after BN recalibration (SubnetEvaluator, "
            "run seed), no fine-tuning; the smallest and largest archs are not in the set; "
            "hypervolume normalised by the reference FLOPs; median and spread (max - min) "
            "over seeds.",
        },
        stem="sampler_comparison_mbv3",
    )
    for name, s in summary.items():
        print(name, {k: (round(v["median"], 4), round(v["spread"], 4)) for k, v in s.items()})
    for name, d in vs_uniform.items():
        print("vs uniform", name, {k: round(v["median"], 4) for k, v in d.items()})
    print(f"target met by: {met}; wrote {out}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--space", choices=("mlp", "mbv3"), default="mlp")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--archs", type=int, default=None, help="default: 32 (mlp), 40 (mbv3)")
    p.add_argument("--epochs-scale", type=float, default=1.0)
    # The CLI's CPU-sized MobileNetV3 (workers.training.cli.CPU_WIDTH_MULT): width 1.0 costs
    # twice as much per epoch, more than the hour this comparison may take on two cores.
    p.add_argument("--width-mult", type=float, default=0.35, help="mbv3 only")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.space == "mlp":
        run_mlp(args)
    else:
        run_mbv3(args)


if __name__ == "__main__":
    main()
