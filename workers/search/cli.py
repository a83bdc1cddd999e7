"""Search a trained supernet from the command line and print the re-measured Pareto front.

    python -m workers.search --checkpoint runs/x/final.pt --dataset digits --device cpu \\
        --algorithm evolution --budget 200 --batch 20 \\
        --objective accuracy:max --objective latency_ms:min --constraint "latency_ms<=5"

Objectives are ``METRIC:min|max`` (metrics: accuracy, loss, latency_ms, flops, params);
constraints are ``METRIC<=NUMBER`` or ``METRIC>=NUMBER`` and may bound any metric. During the
search accuracy is measured (BN-recalibrated subnet on the validation split) and latency is
predicted (``--latency lut``: per-op lookup table, built once per device and space under
``--cache-dir``; ``regressor``; or ``measured``); with a lookup table the searcher also gets
the table's prediction as its cheap latency estimate, as a job's search does. The loop is the
one the job pipeline runs (``workers.search.driver``). The final front is re-measured for real
and printed with predicted and measured values side by side; ``--json PATH`` writes the full
report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from workers.search.driver import build_searcher, run_search
from workers.search.factory import SEARCHERS
from workers.search.objectives import (
    ObjectiveError,
    attach_bounds,
    parse_constraint,
    parse_objective,
)
from workers.search.remeasure import format_table, remeasure_front


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m workers.search",
        description="Multi-objective search over a trained supernet; prints the re-measured "
        "Pareto front.",
    )
    p.add_argument("--checkpoint", required=True, type=Path, help="supernet final.pt")
    p.add_argument("--dataset", required=True, help="dataset name (as used for training)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the dataset splits")
    p.add_argument("--device", default="cpu", help="device profile name (cpu, cuda, ...)")
    p.add_argument("--algorithm", default="evolution", choices=sorted(SEARCHERS))
    p.add_argument("--budget", type=int, default=200, help="real evaluations in all")
    p.add_argument("--batch", type=int, default=20, help="archs per ask")
    p.add_argument("--objective", action="append", default=[], help="METRIC:min|max")
    p.add_argument("--constraint", action="append", default=[], help="METRIC<=N or METRIC>=N")
    p.add_argument("--latency", default="lut", choices=["lut", "regressor", "measured"])
    p.add_argument("--cache-dir", type=Path, default=Path("runs/latency_tables"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        objectives = [parse_objective(t) for t in (args.objective or ["accuracy:max", "flops:min"])]
        constraints = [parse_constraint(t) for t in args.constraint]
    except ObjectiveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.budget < 1 or args.batch < 1:
        print(
            f"error: --budget and --batch must be >= 1 (got {args.budget}, {args.batch})",
            file=sys.stderr,
        )
        return 2
    objectives, constraints = attach_bounds(objectives, constraints)

    import torch  # deferred: parsing and --help stay fast

    from workers.data import load_dataset
    from workers.search.measured import SupernetObjectives
    from workers.training import load_checkpoint

    torch.manual_seed(args.seed)
    try:
        space, net = load_checkpoint(args.checkpoint)
        data = load_dataset(args.dataset, seed=args.data_seed)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    metrics = [o.name for o in objectives] + [c.name for c in constraints]
    t0 = time.perf_counter()
    source = SupernetObjectives(
        net,
        data,
        metrics=metrics,
        device=args.device,
        latency=args.latency,
        cache_dir=args.cache_dir,
        seed=args.seed,
    )
    table = source.table
    searcher = build_searcher(
        args.algorithm,
        space,
        objectives,
        seed=args.seed,
        batch_size=args.batch,
        latency=None if table is None else (lambda a: float(table.predict([a])[0])),
        constraints=constraints,
    )
    history: list[tuple[dict[str, int], dict[str, float]]] = []

    def record(archs: list[dict[str, int]], evs: list[dict[str, float]]) -> None:
        history.extend(zip(archs, evs, strict=True))
        print(f"evaluated {len(history)}/{args.budget}", file=sys.stderr)

    run_search(
        searcher,
        budget=args.budget,
        batch=args.batch,
        evaluate=source.evaluate,
        record=record,
        key=space.encode,
    )
    report = remeasure_front(space, objectives, history, source.measure, constraints=constraints)
    elapsed = time.perf_counter() - t0
    print(
        f"{args.algorithm} search, {len(history)} evaluations, {elapsed:.1f}s; "
        f"front re-measured on device '{args.device}' ({len(report.points)} points, "
        f"* = on the measured front)"
    )
    print(format_table(report, space))
    if args.json is not None:
        doc: dict[str, Any] = {
            "algorithm": args.algorithm,
            "seed": args.seed,
            "budget": args.budget,
            "evaluations": len(history),
            "constraints": [str(c) for c in constraints],
            "report": report.to_json(),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1))
    return 0
