"""Training at dataset scale: datasets on disk, read batch by batch.

Sections (each a function ``section_<name>(args) -> dict``; another section is one more
function and one more name in ``SECTIONS``):

- ``memory``: peak RSS of a process that opens a generated N x 32x32x3 uint8 store and trains
  one epoch of a small CNN on it with augmentation, for N = 10k, 50k, 200k (each in a fresh
  process, so the peaks are independent). Target: flat in N.
- ``data_wait``: the fraction of step time the training loop spends waiting for the next
  batch (the ``DataLoader`` with its worker processes). Target: < 10%.
- ``elastic``: time per step with OFA's elastic resolution sampled per batch (24/28/32,
  ``sample_resolution``) over the static 32 px, augmentation on.

    python -m benchmarks.training_scale [--sizes 10000 50000 200000] [--steps 60]

Writes ``benchmarks/results/training_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks._common_training import RESULTS, write_result
from nas_service.catalog.datasets.store import StoreWriter
from workers.data import Augment, load_dataset, sample_resolution
from workers.data.pipeline import default_workers

AUGMENT = Augment(crop="pad", padding=4, flip=True)
BATCH = 256


def make_store(dest: Path, n: int, seed: int = 0) -> Path:
    """A generated N x 3 x 32 x 32 uint8 store with 10 classes, written in chunks."""
    rng = np.random.default_rng(seed)
    with StoreWriter(dest, sample_shape=(3, 32, 32), dtype="uint8", total=n) as w:
        for start in range(0, n, 8192):
            k = min(8192, n - start)
            w.put(
                rng.integers(0, 256, (k, 3, 32, 32), dtype=np.uint8),
                (np.arange(start, start + k) % 10).astype(np.int64),
            )
        w.finish({"name": f"generated-{n}", "classes": list(range(10))})
    return dest


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )


def _status() -> dict[str, int]:
    text = Path("/proc/self/status").read_text()
    values = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k: int(values[k].split()[0]) // 1024 for k in ("VmRSS", "VmHWM", "RssAnon")}


def _train(
    data: Any,
    steps: int | None,
    *,
    workers: int,
    resize: Callable[[int], int] | None = None,
    on_step: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Train a small CNN on ``data``'s batches; time the waits for data and the steps."""
    torch.manual_seed(0)
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    it = iter(data.batches("train", BATCH, seed=0, augment=AUGMENT, workers=workers))
    wait = total = 0.0
    done = 0
    t_start = time.perf_counter()
    while steps is None or done < steps:
        t0 = time.perf_counter()
        try:
            x, y = next(it)
        except StopIteration:
            break
        t1 = time.perf_counter()
        if resize is not None:
            side = resize(done)
            if side != x.shape[-1]:
                x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        t2 = time.perf_counter()
        if done >= 3:  # the first steps start the loader's workers: not the steady state
            wait += t1 - t0
            total += t2 - t0
        done += 1
        if on_step is not None:
            on_step()
    return {
        "steps": done,
        "wait_s": wait,
        "step_s": total,
        "wall_s": time.perf_counter() - t_start,
        "ms_per_step": 1000 * total / max(1, done - 3),
    }


# ----- sections ---------------------------------------------------------------------------------
def child_memory(n: int, root: Path) -> dict[str, Any]:
    """In a fresh process: open the store, reset the peak, train one epoch in this process
    (no loader workers, so every byte is this process's), with BN-calibration rows."""
    data = load_dataset("npz", seed=0, store=make_store(root / f"s{n}.store", n))
    base = _status()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    peak_anon = [base["RssAnon"]]
    stats = _train(data, None, workers=0, on_step=lambda: peak_anon.append(_status()["RssAnon"]))
    calib, _ = data.rows("train", torch.randperm(data.sizes()["train"])[:2000])
    end = _status()
    return {
        "images": n,
        "store_mb": round(n * 3072 / 2**20, 1),
        "float32_copy_mb": round(n * 3072 * 4 / 2**20, 1),
        "rss_after_open_mb": base["VmRSS"],
        "peak_rss_mb": end["VmHWM"],
        "peak_rss_growth_mb": end["VmHWM"] - base["VmRSS"],
        "peak_anon_mb": max(peak_anon),
        "epoch_steps": stats["steps"],
        "calibration_rows": int(calib.shape[0]),
    }


def section_memory(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.training_scale", "--child-memory", str(n), tmp],
                check=True,
                capture_output=True,
                text=True,
            )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"memory: {runs[-1]}", flush=True)
    peaks = [r["peak_rss_mb"] for r in runs]
    return {
        "what": "peak RSS of one process training one epoch (augmented) on an N-image store",
        "runs": runs,
        "peak_rss_spread_mb": max(peaks) - min(peaks),
        "target": "flat in N",
    }


def section_data_wait(args: argparse.Namespace, data: Any) -> dict[str, Any]:
    workers = default_workers() if args.workers is None else args.workers
    r = _train(data, args.steps, workers=workers)
    frac = r["wait_s"] / max(r["step_s"], 1e-9)
    return {
        "what": "share of step time spent in next(batches) (DataLoader, augmentation on)",
        "loader_workers": workers,
        "batch": BATCH,
        **{k: round(v, 4) for k, v in r.items()},
        "wait_fraction": round(frac, 4),
        "target": "< 0.10",
    }


def section_elastic(args: argparse.Namespace, data: Any) -> dict[str, Any]:
    workers = default_workers() if args.workers is None else args.workers
    static = _train(data, args.steps, workers=workers, resize=lambda s: 32)
    choices = (24, 28, 32)
    elastic = _train(
        data,
        args.steps,
        workers=workers,
        resize=lambda s: sample_resolution(choices, seed=0, epoch=0, step=s),
    )
    return {
        "what": "time per step, elastic resolution per batch (24/28/32) over static 32 px",
        "resolutions": list(choices),
        "static_ms_per_step": round(static["ms_per_step"], 2),
        "elastic_ms_per_step": round(elastic["ms_per_step"], 2),
        "elastic_over_static": round(elastic["ms_per_step"] / static["ms_per_step"], 3),
    }


SECTIONS = ("memory", "data_wait", "elastic")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child-memory":
        print(json.dumps(child_memory(int(sys.argv[2]), Path(sys.argv[3]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    ap.add_argument("--steps", type=int, default=60, help="steps timed per run (wait, elastic)")
    ap.add_argument("--workers", type=int, default=None, help="loader workers (default: auto)")
    ap.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    args = ap.parse_args()
    out: dict[str, Any] = {}
    previous = RESULTS / "training_scale.json"
    if previous.is_file():  # keep the sections this run does not redo (others add theirs)
        out = json.loads(previous.read_text()).get("sections", {})
    if "memory" in args.sections:
        out["memory"] = section_memory(args)
    with tempfile.TemporaryDirectory() as tmp:
        if {"data_wait", "elastic"} & set(args.sections):
            data = load_dataset("npz", seed=0, store=make_store(Path(tmp) / "s.store", 50_000))
        if "data_wait" in args.sections:
            out["data_wait"] = section_data_wait(args, data)
            print(f"data_wait: {out['data_wait']}", flush=True)
        if "elastic" in args.sections:
            out["elastic"] = section_elastic(args, data)
            print(f"elastic: {out['elastic']}", flush=True)
    path = write_result("training_scale", {"sections": out})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
