"""Cost of weight sharing: a supernet with an arch active against the extracted static subnet.

``--space mbv3`` (default): small-input MobileNetV3 (10 classes, 32x32 inputs, batch 64).
``--space vit``: the vision transformer fitted to 32x32 RGB images (hybrid stem, patch 4,
resolutions 28 and 32, embed 32..64, depth 2..4; ``results/elastic_overhead_vit.json``). For
the largest and the smallest arch, training steps (forward, backward, SGD step) and inference
forwards of the two networks are interleaved in one process (alternating which goes first), and
the ratio of the medians is reported.
Run: ``python -m benchmarks.elastic_overhead [--space vit] [--repeats 25] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from search_spaces import DataShape, fitted_options, get_space
from search_spaces.nn import build_supernet

RESULTS = Path(__file__).parent / "results" / "elastic_overhead.json"


def train_step_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def infer_fn(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        with torch.no_grad():
            model(x)

    return step


def interleaved(
    a: Callable[[], None],
    b: Callable[[], None],
    repeats: int,
    warmup: int,
    device: torch.device | None = None,
) -> tuple[list[float], list[float]]:
    """Times of ``a`` and ``b`` (seconds), alternating which runs first in each round; on a
    CUDA ``device`` each call is timed between two synchronisations."""
    cuda = device is not None and device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        a()
        b()
    ta: list[float] = []
    tb: list[float] = []
    for i in range(repeats):
        order = [(a, ta), (b, tb)] if i % 2 == 0 else [(b, tb), (a, ta)]
        for fn, sink in order:
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            sink.append(time.perf_counter() - t0)
    return ta, tb


def summary(sup: list[float], sta: list[float]) -> dict[str, object]:
    ms_sup = [1e3 * t for t in sup]
    ms_sta = [1e3 * t for t in sta]
    med_sup, med_sta = statistics.median(ms_sup), statistics.median(ms_sta)
    return {
        "supernet_ms_median": round(med_sup, 3),
        "static_ms_median": round(med_sta, 3),
        "ratio": round(med_sup / med_sta, 4),
        "supernet_ms": [round(t, 3) for t in ms_sup],
        "static_ms": [round(t, 3) for t in ms_sta],
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=25)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--space", choices=("mbv3", "vit"), default="mbv3")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    out = args.out or (
        RESULTS if args.space == "mbv3" else RESULTS.with_stem(f"{RESULTS.stem}_vit")
    )
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.space == "vit":
        space = get_space("vit", **fitted_options("vit", DataShape.of((3, 32, 32), 10)))
    else:
        space = get_space("mbv3", small_input=True, num_classes=10, resolutions=(32,))
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))
    results: dict[str, object] = {}
    for name, arch in (("largest", space.max_arch()), ("smallest", space.min_arch())):
        net = build_supernet(space)
        net.set_active(arch)
        static = net.extract(arch)
        xa = net.prepare_input(x)  # the arch's resolution (identity for mbv3 at 32)
        net.train()
        static.train()
        train = interleaved(
            train_step_fn(net, xa, y), train_step_fn(static, xa, y), args.repeats, args.warmup
        )
        net.eval()
        static.eval()
        infer = interleaved(infer_fn(net, xa), infer_fn(static, xa), args.repeats, args.warmup)
        results[name] = {
            "arch": space.short(arch),
            "macs_per_image": space.flops(arch),
            "params": space.params(arch),
            "train_step": summary(*train),
            "inference": summary(*infer),
        }
        print(
            f"{name}: train ratio {results[name]['train_step']['ratio']}, "  # type: ignore[index]
            f"inference ratio {results[name]['inference']['ratio']}"  # type: ignore[index]
        )
    report: dict[str, object] = {
        "benchmark": "elastic_overhead",
        "command": "python -m benchmarks.elastic_overhead " + " ".join(argv or sys.argv[1:]),
        "environment": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "settings": {
            "space": space.spec(),
            "batch": args.batch,
            "input": [3, 32, 32],
            "repeats": args.repeats,
            "warmup": args.warmup,
            "optimizer": "SGD(lr=1e-3, momentum=0.9)",
        },
        "targets": {"largest_train_ratio_max": 1.10, "smallest_train_ratio_max": 1.25},
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
