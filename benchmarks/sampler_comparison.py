"""Uniform vs complexity-aware subnet sampling at an equal training budget.

Same space, data, schedule and number of subnets per step for every sampler; only the choice
of the sampled subnets differs. On a fixed set of archs spread over the FLOPs range (the same
for every run), report the test accuracy of the smallest-quartile and largest-quartile subnets
(BN recalibrated, no fine-tuning) and the hypervolume of the (accuracy max, MACs min) front
against the fixed reference point (accuracy 0, 1.1 x the largest MACs).

    python -m benchmarks.sampler_comparison [--seeds 0 1 2] [--archs 32]
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
    spread_archs,
    write_result,
)
from search_spaces import get_space
from workers.data import load_dataset, space_options_for
from workers.search import hypervolume
from workers.training import (
    PhaseConfig,
    SamplerConfig,
    TrainConfig,
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


def schedule(epochs_scale: float) -> TrainConfig:
    """Full network, then everything elastic at once with 2 sampled subnets per step: the
    phase where the sampler decides what is trained."""
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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--archs", type=int, default=32)
    p.add_argument("--epochs-scale", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    base = schedule(args.epochs_scale)
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in VARIANTS}
    macs: dict[str, np.ndarray] = {}
    ref: list[float] = []
    for seed in args.seeds:
        data = load_dataset("digits", seed=seed)
        # A wide MLP space: per-dimension sampling concentrates hard on mid-size subnets.
        space = get_space(
            "mlp",
            **space_options_for("mlp", data),
            widths=[16, 32, 64, 128, 256],
            depths=[1, 2, 3, 4],
        )
        sets = {m: spread_archs(space, args.archs, seed=1234, mode=m) for m in ARCH_SETS}
        macs = {m: np.array([space.flops(a) for a in sets[m]], dtype=float) for m in ARCH_SETS}
        ref = [0.0, 1.1 * float(macs["quantile"].max())]
        bn_x = bn_subset(data, base.bn_images, seed)
        for name, sampler in VARIANTS.items():
            cfg = base.model_copy(update={"sampler": SamplerConfig(pool_size=1000, **sampler)})
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
                    # normalised by the reference MACs: a value in [0, 1]
                    "hypervolume": hypervolume(np.stack([accs, macs[m]], 1), ["max", "min"], ref)
                    / ref[1],
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


if __name__ == "__main__":
    main()
