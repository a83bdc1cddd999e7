"""Command line: train a supernet end to end and write ``run_dir/final.pt``.

python -m workers.training --space mbv3 --dataset digits --run-dir runs/digits
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from search_spaces import get_space, list_spaces
from workers.data import list_datasets, load_dataset, space_options_for
from workers.training.checkpoint import load_checkpoint
from workers.training.config import TrainConfig, default_config
from workers.training.extract import recalibrated_extract
from workers.training.loop import TrainingCancelled, TrainingDiverged, train_supernet

SAMPLERS = ("uniform", "complexity-aware", "complexity-aware:walk", "complexity-aware:adaptive")
# A CPU-sized MobileNetV3 for benchmarks that ask for one (``--width-mult 0.35``); not a
# default: the CLI and a service job both build the space's own default width.
CPU_WIDTH_MULT = 0.35


def _option(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    key, raw = text.split("=", 1)
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a plain string such as a path
    return key, value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m workers.training", description=__doc__)
    p.add_argument("--space", required=True, choices=sorted(list_spaces()))
    p.add_argument("--dataset", required=True, help=f"one of {sorted(list_datasets())}")
    p.add_argument(
        "--data-option",
        action="append",
        type=_option,
        default=[],
        metavar="KEY=VALUE",
        help="dataset option, e.g. path=x.npz or root=folder",
    )
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument(
        "--epochs-scale",
        type=float,
        default=1.0,
        help="multiply every phase's epochs (at least 1 each)",
    )
    p.add_argument("--sampler", choices=SAMPLERS, default="complexity-aware")
    # No default of its own: the space's (the one a service job gets), so a CLI run and a
    # job build the same supernet. Pass e.g. 0.35 for a CPU-sized MobileNetV3.
    p.add_argument(
        "--width-mult",
        type=float,
        default=None,
        help="mbv3 only (default: the space's, as for a service job)",
    )
    p.add_argument("--config", type=Path, help="a TrainConfig JSON file replacing the defaults")
    p.add_argument("--seed", type=int, default=0)
    # One thread by default: on a shared two-core box extra threads oversubscribe the cores.
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda[:i]")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: CUDA")
    p.add_argument(
        "--checkpoint-every-s", type=float, default=None, help="mid-epoch checkpoints by time"
    )
    p.add_argument("--no-resume", action="store_true", help="start over in run_dir")
    return p


class PrintProgress:
    def __init__(self, total_epochs: int) -> None:
        self.total, self.count, self.t0 = total_epochs, 0, time.perf_counter()

    def on_epoch(self, info: dict[str, Any], net: torch.nn.Module) -> None:
        self.count += 1
        acc = info["accuracy"]
        losses = " ".join(f"{k}={v:.3f}" for k, v in info["losses"].items())
        print(
            f"[{self.count}/{self.total}] {info['phase']} epoch {info['epoch']}/{info['epochs']}"
            f"  loss {losses}  val acc S/M/L "
            f"{acc['smallest']['accuracy']:.3f}/{acc['middle']['accuracy']:.3f}/"
            f"{acc['largest']['accuracy']:.3f}  {info['throughput']:.0f} img/s"
            f"  hist {info['flops_histogram']['counts']}"
            f"  {time.perf_counter() - self.t0:.0f}s",
            flush=True,
        )

    def on_rollback(self, info: dict[str, Any]) -> None:
        print(f"rollback: {info['reason']} (lr x{info['lr_scale']:g})", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    t0 = time.perf_counter()
    data = load_dataset(args.dataset, seed=args.seed, **dict(args.data_option))
    options = space_options_for(args.space, data)
    if args.space == "mbv3" and args.width_mult is not None:
        options["width_mult"] = args.width_mult
    space = get_space(args.space, **options)
    if args.config:
        cfg = TrainConfig.model_validate_json(args.config.read_text())
    else:
        name, _, policy = args.sampler.partition(":")
        cfg = default_config(space, data, sampler=name)
        if policy:
            cfg.sampler.policy = policy
    if args.epochs_scale != 1.0:
        cfg = cfg.scaled(args.epochs_scale)
    print(
        f"dataset {data.name}: {data.sizes()} classes={data.num_classes} shape={data.input_shape}"
    )
    print(f"space {json.dumps(space.spec())}")
    print(
        f"phases: {[(p.name, p.epochs) for p in cfg.phases]}; sampler {cfg.sampler.name}"
        f"/{cfg.sampler.policy}; batch {cfg.batch_size}; threads {torch.get_num_threads()}"
    )
    try:
        result = train_supernet(
            space,
            data,
            cfg,
            run_dir=args.run_dir,
            seed=args.seed,
            device=args.device,
            precision=args.precision,
            checkpoint_every_s=args.checkpoint_every_s,
            callbacks=[PrintProgress(cfg.total_epochs())],
            resume=not args.no_resume,
        )
    except (TrainingDiverged, TrainingCancelled) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # Prove the checkpoint is usable: rebuild and extract the smallest and largest subnets.
    loaded_space, net = load_checkpoint(result.final_path)
    x_test, y_test = data.tensors("test")
    for arch in (loaded_space.min_arch(), loaded_space.max_arch()):
        sub = recalibrated_extract(net, arch, data, seed=args.seed, images=cfg.bn_images)
        n_params = sum(p.numel() for p in sub.parameters())
        net.set_active(arch)
        with torch.no_grad():
            acc = float((sub(net.prepare_input(x_test)).argmax(1) == y_test).float().mean())
        print(
            f"extract ok: {loaded_space.flops(arch)} MACs, {n_params} params, "
            f"test accuracy {acc:.4f} (BN recalibrated, no fine-tuning)"
        )
    print(
        f"wrote {result.final_path} in {time.perf_counter() - t0:.1f}s "
        f"(rollbacks: {result.rollbacks})"
    )
    return 0
