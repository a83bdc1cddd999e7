"""Accuracy predictors: Kendall tau on held-out archs against the number of training archs.

A pool of distinct archs of a trained digits supernet (``--space mlp``, the default, or
``--space mbv3``: OFA's MobileNetV3 space at 8x8, which LINAS searches with these predictors) is
scored for real (BN recalibrated, validation split). 200 archs are held out; each predictor is
fitted on the first 50 / 100 / 200 / 400 ... of the rest (reshuffled per repeat) and scored on
the held-out archs. Target: tau >= 0.8 with 200 training archs.

Two ceilings are reported. ``noise_ceiling``: the held-out archs scored again with another
BN-recalibration subset (how well two measurements agree). ``val_test_ceiling``: their
validation accuracy against their test accuracy. A validation split of a few hundred images
decides, per arch, which handful of hard images it happens to get right; that part of an arch's
accuracy is not a function of its structure, so no predictor ranks archs much better than two
image samples agree with each other. ``--val-fraction`` moves images from training to
validation (0.4: 719 validation images instead of 269) to show the predictors with less of that
noise; its results go to ``accuracy_predictor_val40.json``. What the larger split costs is
recorded too: ``picked_test_accuracy`` is the mean test accuracy of the 10 pool archs with the
best validation accuracy (what a search on that split would pick), beside the largest arch's.

    python -m benchmarks.accuracy_predictor                          # MLP supernet (trained once)
    python -m benchmarks.accuracy_predictor --space mbv3 --sizes 50 100 200 400 800
    python -m benchmarks.accuracy_predictor --val-fraction 0.4
    python -m benchmarks.accuracy_predictor --checkpoint runs/x/final.pt
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks._common_training import write_result
from benchmarks.search_efficiency import trained_supernet
from workers.evaluation import SubnetEvaluator
from workers.predictors import make_predictor, quality_report, select_accuracy_predictor

KINDS: dict[str, dict[str, Any]] = {
    "ridge": {},
    "gp": {},
    "mlp": {"members": 5, "hidden": (128, 128), "epochs": 300},
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--space", choices=("mlp", "mbv3"), default="mlp")
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--run-dir", type=Path, default=None)
    p.add_argument("--held-out", type=int, default=200)
    p.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200, 400, 800, 1600])
    p.add_argument("--repeats", type=int, default=3)
    # The evaluator's own default: on digits all ~1,100 train images, so two evaluations agree.
    p.add_argument("--bn-images", type=int, default=2000)
    p.add_argument("--val-fraction", type=float, default=0.15)
    args = p.parse_args()
    torch.set_num_threads(1)
    # A non-default split gets its own supernet and its own result file: "-val40" for 0.4.
    suffix = "" if args.val_fraction == 0.15 else f"_val{round(args.val_fraction * 100)}"
    if args.space != "mlp":
        suffix = f"_{args.space}{suffix}"
    base = args.run_dir or Path(tempfile.gettempdir()) / "nas-bench" / "supernet"
    run_dir = base.with_name(base.name + suffix.replace("_", "-"))
    space, net, data, info = trained_supernet(
        args.checkpoint, run_dir, val_fraction=args.val_fraction, space=args.space
    )
    ev = SubnetEvaluator(net, data, seed=0, bn_images=args.bn_images)
    rng = np.random.default_rng(0)
    need = args.held_out + max(args.sizes)
    pool: dict[tuple[int, ...], dict[str, int]] = {}
    tries = 0
    while len(pool) < need and tries < 100 * need:
        a = space.sample(rng)
        pool.setdefault(space.encode(a), a)
        tries += 1
    archs = list(pool.values())
    t0 = time.perf_counter()
    acc = np.asarray([r["accuracy"] for r in ev.evaluate(archs)])
    eval_seconds = time.perf_counter() - t0
    held, y_held = archs[: args.held_out], acc[: args.held_out]
    # Noise ceiling: the same held-out archs scored with another BN-recalibration subset. No
    # predictor can rank them much better than two measurements agree with each other.
    other = SubnetEvaluator(net, data, seed=1, bn_images=args.bn_images)
    y_other = np.asarray([r["accuracy"] for r in other.evaluate(held)])
    ceiling = quality_report(y_held, y_other)
    y_test = np.asarray([r["accuracy"] for r in ev.evaluate(held, split="test")])
    val_test = quality_report(y_held, y_test)
    top = np.argsort(-acc, kind="stable")[:10]
    picked = [archs[int(i)] for i in top]
    picked_test = float(np.mean([r["accuracy"] for r in ev.evaluate(picked, split="test")]))
    max_test = float(ev.evaluate([space.max_arch()], split="test")[0]["accuracy"])
    rest, y_rest = archs[args.held_out :], acc[args.held_out :]
    rows = []
    for rep in range(args.repeats):
        order = np.random.default_rng(100 + rep).permutation(len(rest))
        for n in args.sizes:
            idx = order[:n]
            xs, ys = [rest[int(i)] for i in idx], y_rest[idx]
            for kind, opts in KINDS.items():
                t0 = time.perf_counter()
                model = make_predictor(kind, space, seed=rep, **opts).fit(xs, ys)
                q = quality_report(y_held, np.asarray(model.predict(held)))
                rows.append({"predictor": kind, "n_train": n, "repeat": rep, **q,
                             "fit_seconds": time.perf_counter() - t0})  # fmt: skip
            chosen, _ = select_accuracy_predictor(space, xs, ys, seed=rep, options=KINDS)
            q = quality_report(y_held, np.asarray(chosen.predict(held)))
            rows.append({"predictor": "selected", "chosen": chosen.kind, "n_train": n,
                         "repeat": rep, **q})  # fmt: skip
            print(rep, n, [(r["predictor"], round(r["kendall_tau"], 3)) for r in rows[-4:]])
    median: dict[str, dict[str, float]] = {}
    for kind in [*KINDS, "selected"]:
        median[kind] = {}
        for n in args.sizes:
            taus = [r["kendall_tau"] for r in rows if r["predictor"] == kind and r["n_train"] == n]
            median[kind][str(n)] = float(np.median(taus))
    payload = {
        "setup": {
            **info,
            "held_out": args.held_out,
            "sizes": args.sizes,
            "repeats": args.repeats,
            "pool": len(archs),
            "bn_images": args.bn_images,
            "eval_seconds": eval_seconds,
            "accuracy_range": [float(acc.min()), float(acc.max())],
            "accuracy_std": float(acc.std()),
            "val_size": data.sizes()["val"],
            "predictor_options": KINDS,
        },
        "median_kendall_tau": median,
        "noise_ceiling": ceiling,
        "val_test_ceiling": val_test,
        "picked_test_accuracy": picked_test,
        "max_arch_test_accuracy": max_test,
        "target": {"n_train": 200, "kendall_tau": 0.8},
        "rows": rows,
    }
    out = write_result("accuracy_predictor", payload, f"accuracy_predictor{suffix}")
    for kind, v in median.items():
        print(kind, v)
    print("noise ceiling (tau between two BN subsets)", round(ceiling["kendall_tau"], 3))
    print("val/test ceiling (tau, validation vs test accuracy)", round(val_test["kendall_tau"], 3))
    print("test accuracy of the 10 best by validation", round(picked_test, 4),
          "largest arch", round(max_test, 4))  # fmt: skip
    print("wrote", out)


if __name__ == "__main__":
    main()
