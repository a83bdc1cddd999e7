"""Latency predictors against measured latency on this machine's CPU.

Space: small-input MobileNetV3 (1 input channel, 10 classes, resolutions 24/28/32). Device
profile ``cpu-thread`` by default: 1 thread, batch 1, timed with the thread's CPU clock, because
on a shared machine wall-clock timings of the same network vary more between rounds than
latency varies between archs (``--profile cpu`` for wall clock). Held-out archs are timed in
interleaved rounds (every arch once per round, order reshuffled each round) so that slow phases
of a shared machine spread over all archs instead of hitting a few; an arch's latency is the
trimmed mean over all its rounds.

Two predictors are scored on the held-out archs: the per-unit lookup table (sum of unit rows,
scale and constant fitted on ``--calibration`` measured networks) and the whole-network
regressor (fitted on ``--train`` measured networks). Targets: >= 95% of archs within +-10%,
Kendall tau >= 0.9.

    python -m benchmarks.latency_predictor
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
from search_spaces import get_space
from search_spaces.nn import build_static
from workers.predictors import LatencyRegressor, LatencyTable, calibration_report, get_device
from workers.predictors.latency import measure_latency, trimmed


def timed_interleaved(
    space: Any, archs: list[dict[str, int]], rounds: int, repeats: int, seed: int, clock: str
) -> tuple[np.ndarray, list[list[float]]]:
    raw: list[list[float]] = [[] for _ in archs]
    rng = np.random.default_rng(seed)
    for r in range(rounds):
        for i in rng.permutation(len(archs)):
            a = archs[int(i)]
            net = build_static(space, a)
            s = measure_latency(
                net, space.input_shape(a), warmup=2, repeats=repeats, threads=1, clock=clock
            )
            raw[int(i)] += s.raw_ms
        print(f"round {r + 1}/{rounds} done", flush=True)
    return np.asarray([float(trimmed(v).mean()) for v in raw]), raw


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--held-out", type=int, default=200)
    p.add_argument("--train", type=int, default=300)
    p.add_argument("--calibration", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--width-mult", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default="cpu-thread", choices=["cpu", "cpu-thread"])
    p.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "nas-lut")
    args = p.parse_args()
    torch.set_num_threads(1)
    space = get_space(
        "mbv3", num_classes=10, in_channels=1, small_input=True, width_mult=args.width_mult
    )
    profile = get_device(args.profile)
    rng = np.random.default_rng(args.seed)
    seen: dict[tuple[int, ...], dict[str, int]] = {}
    total = args.held_out + args.train + args.calibration
    while len(seen) < total:
        a = space.sample(rng)
        seen.setdefault(space.encode(a), a)
    archs = list(seen.values())
    held = archs[: args.held_out]
    train = archs[args.held_out : args.held_out + args.train]
    calib = archs[args.held_out + args.train :]

    t0 = time.perf_counter()
    table = LatencyTable.build(space, profile, cache_dir=args.cache_dir)
    lut_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    measured, raw = timed_interleaved(
        space, archs, args.rounds, args.repeats, args.seed, profile.clock
    )
    measure_seconds = time.perf_counter() - t0
    m_held = measured[: args.held_out]
    m_train = measured[args.held_out : args.held_out + args.train]
    m_calib = measured[args.held_out + args.train :]

    scale, const = table.fit_constant(calib, list(m_calib))
    lut_pred = table.predict(held)
    reg = LatencyRegressor(space, seed=args.seed).fit(train, m_train)
    reg_pred = np.asarray(reg.predict(held))
    raw_sum = np.asarray([table.sum_ms(a) for a in held])
    reports = {
        "lut": calibration_report(lut_pred, m_held),
        "lut_unfitted_sum": calibration_report(raw_sum, m_held),
        "regressor": calibration_report(reg_pred, m_held),
    }
    # Repeatability of the measurement itself: the first round against the rest.
    k = args.repeats
    first = np.asarray([float(trimmed(v[:k]).mean()) for v in raw[: args.held_out]])
    rest = np.asarray([float(trimmed(v[k:]).mean()) for v in raw[: args.held_out]])
    payload = {
        "setup": {
            "space": space.spec(),
            "device_profile": profile.__dict__,
            "held_out": args.held_out,
            "train": args.train,
            "calibration": args.calibration,
            "rounds": args.rounds,
            "repeats_per_round": args.repeats,
            "lut_rows": len(table.rows),
            "lut_build_seconds": lut_seconds,
            "measure_seconds": measure_seconds,
            "lut_scale": scale,
            "lut_constant_ms": const,
        },
        "reports": reports,
        "measurement_repeatability": calibration_report(first, rest) if args.rounds > 1 else None,
        "targets": {"within_10pct": 0.95, "kendall_tau": 0.9},
        "held_out_rows": [
            {
                "arch": space.short(a),
                "measured_ms": float(m),
                "lut_ms": float(lp),
                "regressor_ms": float(rp),
            }
            for a, m, lp, rp in zip(held, m_held, lut_pred, reg_pred, strict=True)
        ],
        "raw_ms_held_out": raw[: args.held_out],
    }
    out = write_result("latency_predictor", payload)
    for name, rep in reports.items():
        print(name, {k: round(v, 4) for k, v in rep.items()})
    print("repeatability", payload["measurement_repeatability"])
    print("wrote", out)


if __name__ == "__main__":
    main()
