"""Images per second of one sandwich step vs four plain steps of the static subnets it trains.

The sandwich step (largest with labels, smallest and two sampled subnets distilled from the
largest, gradient clipping, one optimizer step) runs on the weight-sharing supernet. The ideal
is the same four archs as plain static networks (``build_static`` with the extracted weights),
each doing its own forward, backward and optimizer step on the same batch. Ratio =
(time of the four static steps) / (time of the sandwich step): 1.0 means no elastic overhead.
Repeats are interleaved so that machine load affects both sides alike; medians are reported.

    python -m benchmarks.training_throughput [--repeats 7] [--batch 64]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks._common_training import write_result
from search_spaces import Arch, get_space
from search_spaces.nn import build_static, build_supernet
from workers.data import load_dataset, space_options_for
from workers.training.config import PhaseConfig, TrainConfig
from workers.training.optim import make_optimizer
from workers.training.steps import StepPlan, sandwich_step


class FixedSampler:
    """Hands out the same sampled archs every step so both sides train identical subnets."""

    def __init__(self, archs: list[Arch]):
        self.archs, self.i = archs, 0

    def propose(self) -> list[Arch]:
        a = self.archs[self.i % len(self.archs)]
        self.i += 1
        return [a]

    def accept(self, arch: Arch, loss: float) -> None:
        pass


def measure(
    space_id: str, opts: dict[str, Any], batch: int, repeats: int, warmup: int
) -> dict[str, Any]:
    data = load_dataset("digits", seed=0)
    space = get_space(space_id, **space_options_for(space_id, data), **opts)
    cfg = TrainConfig(phases=[PhaseConfig(name="x", epochs=1, lr=0.05)], batch_size=batch)
    torch.manual_seed(0)
    net = build_supernet(space)
    rng = np.random.default_rng(0)
    sampled = [space.sample(rng) for _ in range(2)]
    archs = [space.max_arch(), space.min_arch(), *sampled]
    plan = StepPlan(
        largest=archs[0],
        smallest=archs[1],
        sandwich=True,
        random_subnets=2,
        distill=True,
        label_smoothing=0.1,
    )
    opt = make_optimizer(net, 0.05, cfg)
    statics = []
    for a in archs:
        m = build_static(space.spec(), a)
        m.load_state_dict(net.extract(a).state_dict())
        m.train()
        statics.append((m, make_optimizer(m, 0.05, cfg)))
    x, y = data.tensors("train")
    xb, yb = x[:batch], y[:batch]
    prepared = []
    for a in archs:
        net.set_active(a)
        prepared.append(net.prepare_input(xb))
    net.train()

    def sandwich() -> float:
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        sandwich_step(net, xb, yb, plan, FixedSampler(sampled))  # type: ignore[arg-type]
        torch.nn.utils.clip_grad_value_(net.parameters(), 1.0)
        opt.step()
        return time.perf_counter() - t

    def four_static() -> float:
        t = time.perf_counter()
        for (m, o), xin in zip(statics, prepared, strict=True):
            o.zero_grad(set_to_none=True)
            F.cross_entropy(m(xin), yb).backward()
            torch.nn.utils.clip_grad_value_(m.parameters(), 1.0)
            o.step()
        return time.perf_counter() - t

    for _ in range(warmup):
        sandwich()
        four_static()
    ts, tf = [], []
    for _ in range(repeats):
        ts.append(sandwich())
        tf.append(four_static())
    ms, mf = statistics.median(ts), statistics.median(tf)
    ratios = [f / s for s, f in zip(ts, tf, strict=True)]
    return {
        "space": space.spec(),
        "batch": batch,
        "archs_macs": [space.flops(a) for a in archs],
        "sandwich_step_seconds": ts,
        "four_static_steps_seconds": tf,
        "median_sandwich_seconds": ms,
        "median_four_static_seconds": mf,
        "sandwich_images_per_s": batch / ms,
        "four_static_images_per_s": batch / mf,
        "ratio_median_of_paired": statistics.median(ratios),
        "ratio_of_medians": mf / ms,
        "paired_ratios": ratios,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width-mult", type=float, default=0.35)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    results = {
        "mbv3": measure(
            "mbv3", {"width_mult": args.width_mult}, args.batch, args.repeats, args.warmup
        ),
        "mlp": measure("mlp", {}, args.batch, args.repeats * 4, args.warmup),
    }
    for k, r in results.items():
        print(
            f"{k}: sandwich {r['sandwich_images_per_s']:.0f} img/s, four static "
            f"{r['four_static_images_per_s']:.0f} img/s, ratio {r['ratio_median_of_paired']:.3f}"
        )
    out = write_result(
        "training_throughput",
        {
            "dataset": "digits",
            "repeats": args.repeats,
            "warmup": args.warmup,
            "results": results,
            "wall_seconds": time.perf_counter() - t0,
            "notes": "ratio = four static steps time / sandwich step time (paired per repeat, "
            "median); images/s count each batch once per step.",
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
