"""Supernet subnets vs the same archs trained from scratch, on digits.

For each seed: train the supernet with the default progressive-shrinking schedule; take archs
spread over the FLOPs range; score each extracted subnet on the test split after BN
recalibration (the shared rule of ``workers.bn``, run seed; no fine-tuning); train the same
arch from scratch with the same recipe for as many epochs as the whole supernet run; report the
accuracy gap (scratch - supernet). The two ends (smallest, largest) are trained every step by
the sandwich rule, the middle archs only when sampled, so the summary reports them apart.

    python -m benchmarks.supernet_vs_scratch [--space mlp|mbv3|vit] [--seeds 0 1 2] [--archs 6]

``--space mbv3`` writes ``results/supernet_vs_scratch_mbv3.json`` (width 0.35 by default, the
CLI's CPU size); ``--space vit`` ``results/supernet_vs_scratch_vit.json`` (the space fitted to
digits: the hybrid with patch 2; no batch norm, so the subnets are scored as extracted).
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
    accuracy,
    bn_subset,
    extracted_test_accuracy,
    spread_archs,
    train_static,
    write_result,
)
from search_spaces import get_space
from workers.data import load_dataset, space_options_for
from workers.training import default_config, train_supernet


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--space", choices=("mlp", "mbv3", "vit"), default="mlp")
    p.add_argument("--width-mult", type=float, default=0.35)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--archs", type=int, default=6)
    p.add_argument("--epochs-scale", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tag", default="", help="suffix of the result file's name")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    runs = []
    t_start = time.perf_counter()
    for seed in args.seeds:
        data = load_dataset("digits", seed=seed)
        opts = space_options_for(args.space, data)
        if args.space == "mbv3":
            opts["width_mult"] = args.width_mult
        space = get_space(args.space, **opts)
        cfg = default_config(space, data)
        if args.epochs_scale != 1.0:
            cfg = cfg.scaled(args.epochs_scale)
        epochs = cfg.total_epochs()
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = train_supernet(space, data, cfg, run_dir=Path(tmp), seed=seed)
            sup_seconds = time.perf_counter() - t0
            from workers.training import load_checkpoint

            _, net = load_checkpoint(res.final_path)
        bn_x = bn_subset(data, cfg.bn_images, seed)
        archs = spread_archs(space, args.archs, seed=1234)  # the same archs for every seed
        rows = []
        for arch in archs:
            acc_sup = extracted_test_accuracy(net, arch, data, bn_x)
            lr = cfg.phases[0].lr
            model, secs = train_static(space, arch, data, epochs, lr, cfg, seed)
            prep = net.prepare_input
            net.set_active(arch)
            x, y = data.tensors("test")
            acc_scratch = accuracy(model, prep(x), y)
            rows.append(
                {
                    "arch": space.short(arch),
                    "macs": space.flops(arch),
                    "params": space.params(arch),
                    "supernet_test_acc": acc_sup,
                    "scratch_test_acc": acc_scratch,
                    "gap_points": 100 * (acc_scratch - acc_sup),
                    "scratch_seconds": secs,
                }
            )
            print(
                f"seed {seed} {space.flops(arch):>9} MACs  supernet {acc_sup:.4f}  "
                f"scratch {acc_scratch:.4f}",
                flush=True,
            )
        runs.append({"seed": seed, "epochs": epochs, "supernet_seconds": sup_seconds, "rows": rows})
    gaps = np.array([r["gap_points"] for run in runs for r in run["rows"]])
    per_seed = [float(np.mean([r["gap_points"] for r in run["rows"]])) for run in runs]
    summary: dict[str, Any] = {
        "mean_gap_points": float(gaps.mean()),
        "std_gap_points_over_seeds": float(np.std(per_seed)),
        "per_seed_mean_gap_points": per_seed,
        "min_gap_points": float(gaps.min()),
        "max_gap_points": float(gaps.max()),
        "target_mean_gap_points": 1.0,
        "met_target": bool(gaps.mean() <= 1.0),
        "mean_supernet_acc": float(
            np.mean([r["supernet_test_acc"] for run in runs for r in run["rows"]])
        ),
        "mean_scratch_acc": float(
            np.mean([r["scratch_test_acc"] for run in runs for r in run["rows"]])
        ),
    }
    # The rows are sorted by FLOPs: the first is the smallest arch, the last the largest.
    groups = {
        "smallest": lambda rows: rows[:1],
        "middle": lambda rows: rows[1:-1],
        "largest": lambda rows: rows[-1:],
    }
    for group, pick in groups.items():
        rows_by_seed = [pick(run["rows"]) for run in runs]
        seed_gaps = [float(np.mean([r["gap_points"] for r in rows])) for rows in rows_by_seed]
        summary[group] = {
            "archs_per_seed": len(rows_by_seed[0]),
            "median_gap_points": float(np.median(seed_gaps)),
            "per_seed_mean_gap_points": seed_gaps,
            "spread_gap_points": float(max(seed_gaps) - min(seed_gaps)),
            "mean_supernet_acc": float(
                np.mean([r["supernet_test_acc"] for rows in rows_by_seed for r in rows])
            ),
            "mean_scratch_acc": float(
                np.mean([r["scratch_test_acc"] for rows in rows_by_seed for r in rows])
            ),
        }
    out = write_result(
        "supernet_vs_scratch",
        {
            "space": args.space,
            "dataset": "digits",
            "seeds": args.seeds,
            "config": cfg.model_dump(),
            "runs": runs,
            "summary": summary,
            "wall_seconds": time.perf_counter() - t_start,
            "notes": "gap = scratch - supernet test accuracy in points (positive: supernet worse); "
            "supernet subnets are BN-recalibrated on a seeded train subset and extracted, "
            "no fine-tuning; scratch runs use the same recipe for the supernet's total epochs; "
            "'smallest' / 'middle' / 'largest' split the archs (the ends are the sandwich "
            "rule's, trained every step); medians and spreads are over per-seed means.",
        },
        stem=(
            ("supernet_vs_scratch" if args.space == "mlp" else f"supernet_vs_scratch_{args.space}")
            + (f"_{args.tag}" if args.tag else "")
        ),
    )
    print(summary)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
