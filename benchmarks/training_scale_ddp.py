"""Data-parallel supernet training on Ray Train: images/s with 1 and 2 workers.

The ``ddp`` section of ``benchmarks/results/training_scale.json`` (the other sections of that
file come from ``benchmarks.training_scale`` and are kept). For each network, the same job
(synthetic data, the same global batch and seed) is trained through ``RayEngine`` with 1 CPU
worker and then with 2, once with batch norm on the global batch's statistics
(``resources.sync_bn``, the default: the run equals one worker's) and once on each worker's
share (``sync_bn: false``, plain DDP), every worker one thread, on a local Ray. Reported:
images per second of the training steps (the epochs' own figure, evaluation excluded; median
over the epochs after the first, which pays the start-up) and the wall time of each run. The
networks: a small MLP (little compute per step, so the collectives dominate) and an mbv3
supernet on 32x32x3 images (convolutions: compute per step is larger and there are many more
batch-norm layers). On a two-core machine shared with other work the second worker can at
best double the rate.

    python -m benchmarks.training_scale_ddp [--nets mlp,mbv3] [--epochs-scale 0.5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common_training import RESULTS, write_result

# What each network trains on: the data, the space's options, the global batch, the number
# of samples (``--n`` overrides it).
NETS: dict[str, dict[str, Any]] = {
    "mlp": {
        "data": {"n": 6000, "shape": [64], "classes": 10, "noise": 0.5},
        "space": {"widths": [64, 128, 256]},
        "batch": 128,
    },
    "mbv3": {
        "data": {"n": 1536, "shape": [3, 32, 32], "classes": 10, "noise": 0.5},
        "space": {
            "width_mult": 0.35,
            "kernels": [3, 5],
            "expands": [3, 4],
            "depths": [1, 2],
            "resolutions": [32],
        },
        "batch": 64,
    },
}
RUNS = (("1", 1, True), ("2", 2, True), ("2_local_bn", 2, False))


def section_net(net: str, args: argparse.Namespace) -> dict[str, Any]:
    from search_spaces import get_space
    from workers.data import space_options_for
    from workers.pipeline import DataRef, EpochReport, TrainRequest, work
    from workers.pipeline.records import TrainResources
    from workers.runtime.ray_engine import RayEngine

    cfg = NETS[net]
    data_opts = {**cfg["data"], **({"n": args.n} if args.n else {})}
    data = DataRef("synthetic", 0, data_opts)
    opts = {**space_options_for(net, work.load_data(data)), **cfg["space"]}
    space = get_space(net, **opts)
    training = {"preset": "tiny", "epochs_scale": args.epochs_scale, "batch_size": cfg["batch"]}
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, workers, sync_bn in RUNS:
            seen: list[EpochReport] = []
            req = TrainRequest(
                space.spec(),
                data,
                training,
                Path(tmp) / key,
                seed=0,
                resources=TrainResources(workers=workers, sync_bn=sync_bn),
            )
            t0 = time.perf_counter()
            RayEngine(max_failures=0).train(req, seen.append, lambda: False)
            wall = time.perf_counter() - t0
            rates = [float(r.metrics["throughput"]) for r in seen]
            steady = rates[1:] or rates
            runs[key] = {
                "workers": workers,
                "sync_bn": sync_bn,
                "images_per_s_median": round(statistics.median(steady), 1),
                "images_per_s_per_epoch": [round(v, 1) for v in rates],
                "epochs": len(seen),
                "wall_s": round(wall, 1),
            }
            print(f"{net} {key}: {runs[key]}", flush=True)
    one = runs["1"]["images_per_s_median"]

    def ratio(key: str) -> float | None:
        return round(runs[key]["images_per_s_median"] / one, 2) if one else None

    return {
        "job": {"space": net, **cfg["space"], "data": data_opts, **training},
        "runs": runs,
        "speedup_2_over_1": ratio("2"),
        "speedup_2_local_bn_over_1": ratio("2_local_bn"),
    }


def section_ddp(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        return {net: section_net(net, args) for net in args.nets}
    finally:
        ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", default="mlp,mbv3", help=f"comma-separated, of {', '.join(NETS)}")
    ap.add_argument("--n", type=int, default=None, help="synthetic samples (each net's default)")
    ap.add_argument("--epochs-scale", type=float, default=0.5)
    args = ap.parse_args()
    args.nets = [n for n in args.nets.split(",") if n]
    unknown = [n for n in args.nets if n not in NETS]
    if unknown:
        ap.error(f"unknown nets {unknown}; choose from {', '.join(NETS)}")
    previous = RESULTS / "training_scale.json"
    out: dict[str, Any] = {}
    if previous.is_file():  # keep the other sections (benchmarks.training_scale)
        out = json.loads(previous.read_text()).get("sections", {})
    # This file's other sections come from another command: this one's is recorded here.
    command = "python -m benchmarks.training_scale_ddp " + " ".join(sys.argv[1:])
    out["ddp"] = {"command": command.strip(), **section_ddp(args)}
    path = write_result("training_scale", {"sections": out})
    print(f"wrote {path} (section ddp)")


if __name__ == "__main__":
    main()
