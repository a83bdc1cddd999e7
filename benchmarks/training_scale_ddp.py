"""Data-parallel supernet training on Ray Train: images/s with 1 and 2 workers.

The ``ddp`` section of ``benchmarks/results/training_scale.json`` (the other sections of that
file come from ``benchmarks.training_scale`` and are kept): the same job (an MLP supernet on
synthetic data, the same global batch and seed) trained through ``RayEngine`` with 1 and then
2 CPU workers of one thread each on a local Ray, images per second of the training steps
(the epochs' own figure, evaluation excluded) and the wall time of the whole run. On a
two-core machine shared with other work the second worker can at best double the rate.

    python -m benchmarks.training_scale_ddp [--n 6000] [--epochs-scale 0.5] [--batch 128]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common_training import RESULTS, write_result


def section_ddp(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    from search_spaces import get_space
    from workers.data import space_options_for
    from workers.pipeline import DataRef, EpochReport, TrainRequest, work
    from workers.pipeline.records import TrainResources
    from workers.runtime.ray_engine import RayEngine

    data = DataRef("synthetic", 0, {"n": args.n, "shape": [64], "classes": 10, "noise": 0.5})
    opts = {**space_options_for("mlp", work.load_data(data)), "widths": [64, 128, 256]}
    space = get_space("mlp", **opts)
    training = {"preset": "tiny", "epochs_scale": args.epochs_scale, "batch_size": args.batch}
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    runs: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for workers in (1, 2):
                seen: list[EpochReport] = []
                req = TrainRequest(
                    space.spec(),
                    data,
                    training,
                    Path(tmp) / f"w{workers}",
                    seed=0,
                    resources=TrainResources(workers=workers),
                )
                t0 = time.perf_counter()
                RayEngine(max_failures=0).train(req, seen.append, lambda: False)
                wall = time.perf_counter() - t0
                rates = [float(r.metrics["throughput"]) for r in seen]
                runs[str(workers)] = {
                    "workers": workers,
                    "images_per_s_median": round(statistics.median(rates), 1),
                    "images_per_s_per_epoch": [round(v, 1) for v in rates],
                    "epochs": len(seen),
                    "wall_s": round(wall, 1),
                }
                print(f"{workers} worker(s): {runs[str(workers)]}", flush=True)
    finally:
        ray.shutdown()
    one, two = runs["1"]["images_per_s_median"], runs["2"]["images_per_s_median"]
    return {
        "job": {"space": "mlp", "widths": [64, 128, 256], "n": args.n, **training},
        "runs": runs,
        "speedup_2_over_1": round(two / one, 2) if one else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=6000, help="synthetic samples")
    ap.add_argument("--epochs-scale", type=float, default=0.5)
    ap.add_argument("--batch", type=int, default=128, help="global batch")
    args = ap.parse_args()
    previous = RESULTS / "training_scale.json"
    out: dict[str, Any] = {}
    if previous.is_file():  # keep the other sections (benchmarks.training_scale)
        out = json.loads(previous.read_text()).get("sections", {})
    out["ddp"] = section_ddp(args)
    path = write_result("training_scale", {"sections": out})
    print(f"wrote {path} (section ddp)")


if __name__ == "__main__":
    main()
