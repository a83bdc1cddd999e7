"""Supernet training on a GPU: throughput, elastic overhead, memory, and the default preset's time.

Sections (each measured on synthetic batches resident on the device, so the data loader is not
part of the measure; ``benchmarks.training_scale`` measures its wait):

- ``throughput``: images/s of MobileNetV3 sandwich steps (largest + smallest + the preset's
  sampled subnets, distilled from the largest, gradient clipping, SGD) at 224x224 (the space the
  service fits to 224 px RGB images, 1000 classes: resolutions 216..224) and at 32x32 (the
  CIFAR fit, resolutions 24..32), in fp32 and under bf16 autocast, with the peak GPU memory.
- ``elastic``: a train step (forward, backward, SGD) of the supernet with an arch active over
  the same step of the extracted static subnet, interleaved, for the largest and the smallest
  arch, at both sizes and precisions. Target: median ratio <= 1.10.
- ``preset``: the default training preset for CIFAR-sized data (50,000 training images, the
  phases ``workers.training.config.default_config`` gives the CIFAR space: batch 128, one epoch
  of the full network, then one per elastic kind with two for the last): steps/s measured for
  every phase's own view of the space at the preset's batch, times the preset's steps. Training
  steps only: the per-epoch evaluation, the adaptive sampler's probes and the data loader are
  not counted.

Imports are torch, numpy, ``search_spaces``, ``workers.devices`` and the interleaved timer of
``benchmarks.elastic_overhead`` (torch and ``search_spaces`` itself) only (``workers.training``
needs pydantic, which a bare GPU machine lacks): the sandwich step here is a minimal one of the
same shape as ``workers.training.steps.sandwich_step``. The preset's phases come from
``default_config`` when the service's packages are importable, else from
``benchmarks/gpu/preset_cifar50k.json`` (written by ``--write-preset``; a test keeps it equal
to ``default_config``).

    python -m benchmarks.gpu_scale            # on a GPU (or bash benchmarks/gpu/run.sh)
    python -m benchmarks.gpu_scale --smoke    # the same code on the CPU at tiny sizes
    python -m benchmarks.gpu_scale --write-preset

Writes ``benchmarks/results/gpu_scale.json`` (``--out``), and copies it into ``$OUT`` when that
variable names a folder. Without a CUDA device (and without ``--smoke``) it writes a JSON that
says so and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.elastic_overhead import interleaved
from search_spaces import Arch, DataShape, SearchSpace, fitted_options, get_space
from search_spaces.nn import Supernet, build_supernet
from workers.devices import resolve_device

HERE = Path(__file__).parent
RESULTS = HERE / "results"
PRESET = HERE / "gpu" / "preset_cifar50k.json"
CIFAR_TRAIN = 50_000
TARGET_RATIO = 1.10
PRECISIONS = ("fp32", "bf16")


# ----- spaces and the preset ---------------------------------------------------------------------
@dataclass(frozen=True)
class Size:
    """One input size: the space the service fits to such images, and the batch timed."""

    name: str
    side: int
    classes: int
    batch: int
    smoke: bool = False

    def space(self) -> SearchSpace:
        options: dict[str, Any] = dict(
            fitted_options("mbv3", DataShape.of((3, self.side, self.side), self.classes))
        )
        if self.smoke:
            options.update(SMOKE_OPTIONS)
        return get_space("mbv3", **options)


# --smoke: a narrow, shallow MobileNetV3 (the same code, a fraction of the work).
SMOKE_OPTIONS: dict[str, Any] = {
    "width_mult": 0.25,
    "kernels": [3, 5],
    "expands": [2, 3],
    "depths": [1, 2],
}


def cifar_space() -> SearchSpace:
    """The space a job on CIFAR-10-shaped data (3 x 32 x 32, 10 classes) trains."""
    return get_space("mbv3", **fitted_options("mbv3", DataShape.of((3, 32, 32), 10)))


def preset_from_config(n_train: int = CIFAR_TRAIN) -> dict[str, Any]:
    """The default preset for ``n_train`` CIFAR images, from the trainer's own rule (needs the
    service's packages: pydantic)."""
    from workers.data.pipeline import steps_of
    from workers.training.config import default_config

    class _Sizes:
        def sizes(self) -> dict[str, int]:
            return {"train": n_train, "val": 0, "test": 0}

    space = cifar_space()
    cfg = default_config(space, cast(Any, _Sizes()))
    return {
        "what": f"workers.training.config.default_config for the CIFAR space, {n_train} images",
        "space": space.spec(),
        "n_train": n_train,
        "batch_size": cfg.batch_size,
        "steps_per_epoch": steps_of(n_train, cfg.batch_size, True),
        "distill": cfg.distill,
        "label_smoothing": cfg.label_smoothing,
        "grad_clip": cfg.grad_clip,
        "grad_clip_mode": cfg.grad_clip_mode,
        "momentum": cfg.momentum,
        "nesterov": cfg.nesterov,
        "weight_decay": cfg.weight_decay,
        "phases": [
            {
                "name": p.name,
                "epochs": p.epochs,
                "lr": p.lr,
                "sandwich": p.sandwich,
                "random_subnets": p.random_subnets,
                "unlock": {k: list(v) for k, v in p.unlock.items()},
            }
            for p in cfg.phases
        ],
    }


def load_preset() -> tuple[dict[str, Any], str]:
    try:
        return preset_from_config(), "workers.training.config.default_config"
    except ImportError:
        return json.loads(PRESET.read_text()), str(PRESET.relative_to(HERE.parent))


def phase_view(space: SearchSpace, unlock: dict[str, list[int]]) -> SearchSpace:
    """What a phase trains (``workers.training.config.restrict_for_phase``): the unlocked kinds
    as given (an empty list: all choices), every other dimension at its largest choice."""
    fixed = {d.name: (max(d.choices),) for d in space.dims if d.kind not in unlock}
    view = space.restrict(**fixed) if fixed else space
    partial = {k: v for k, v in unlock.items() if v}
    return view.restrict(**partial) if partial else view


# ----- a minimal sandwich step -----------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    sandwich: bool = True
    random_subnets: int = 1
    distill: bool = True
    label_smoothing: float = 0.1
    grad_clip: float = 1.0


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class SandwichTrainer:
    """Sandwich-rule steps on ``view``: the largest from the labels (label smoothing), the
    smallest and ``random_subnets`` uniformly sampled subnets from its detached soft
    predictions; forwards under the precision's autocast, losses in fp32, gradients clipped by
    value, one SGD step. Losses stay on the device (no host read per step)."""

    def __init__(
        self,
        net: Supernet,
        view: SearchSpace,
        plan: Plan,
        device: torch.device,
        precision: str,
        *,
        seed: int = 0,
        weight_decay: float = 3e-5,
    ):
        self.net, self.view, self.plan = net, view, plan
        self.device, self.precision = device, precision
        self.rng = np.random.default_rng(seed)
        self.params = [p for p in net.parameters() if p.requires_grad]
        self.opt = torch.optim.SGD(
            self.params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=weight_decay
        )
        self.largest, self.smallest = view.max_arch(), view.min_arch()
        self.loss_sum = torch.zeros((), device=device)
        self.subnets = 0  # forward/backward passes done (for images/s per subnet)

    def _forward(self, arch: Arch, x: torch.Tensor) -> torch.Tensor:
        self.net.set_active(arch)
        with autocast(self.device, self.precision):
            out = self.net(self.net.prepare_input(x))
        return cast(torch.Tensor, out).float()

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        plan = self.plan
        self.opt.zero_grad(set_to_none=True)
        teacher = None
        logits = self._forward(self.largest, x)
        loss = F.cross_entropy(logits, y, label_smoothing=plan.label_smoothing)
        loss.backward()
        total = loss.detach()
        self.subnets += 1
        if plan.distill:
            teacher = F.softmax(logits.detach(), dim=1)
        students: list[Arch] = []
        if plan.sandwich and self.smallest != self.largest:
            students.append(self.smallest)
        students += [self.view.sample(self.rng) for _ in range(plan.random_subnets)]
        for arch in students:
            out = self._forward(arch, x)
            if teacher is not None:
                s_loss = -(teacher * F.log_softmax(out, dim=1)).sum(dim=1).mean()
            else:
                s_loss = F.cross_entropy(out, y)
            s_loss.backward()
            total = total + s_loss.detach()
            self.subnets += 1
        torch.nn.utils.clip_grad_value_(self.params, plan.grad_clip)
        self.opt.step()
        self.loss_sum += total


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batch_on(
    device: torch.device, batch: int, side: int, classes: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, side, side, generator=g)
    y = torch.randint(0, classes, (batch,), generator=g)
    return x.to(device), y.to(device)


@contextlib.contextmanager
def peak_memory(device: torch.device, into: dict[str, Any]) -> Iterator[None]:
    """Peak GPU memory of the block (MiB), allocated by tensors and reserved by the caching
    allocator; nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    yield
    if device.type == "cuda":
        into["peak_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        into["peak_reserved_mib"] = round(torch.cuda.max_memory_reserved(device) / 2**20, 1)


def time_steps(fn: Callable[[], None], steps: int, warmup: int, device: torch.device) -> float:
    """Seconds for ``steps`` calls of ``fn`` after ``warmup`` (one device sync at each end,
    like the trainer, which reads the device only every few steps)."""
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return time.perf_counter() - t0


def train_rate(
    space: SearchSpace,
    view: SearchSpace,
    plan: Plan,
    device: torch.device,
    precision: str,
    batch: int,
    side: int,
    classes: int,
    steps: int,
    warmup: int,
) -> dict[str, Any]:
    torch.manual_seed(0)
    out: dict[str, Any] = {}
    with peak_memory(device, out):
        net = build_supernet(space).to(device).train()
        trainer = SandwichTrainer(net, view, plan, device, precision)
        x, y = batch_on(device, batch, side, classes)
        seconds = time_steps(lambda: trainer.step(x, y), steps, warmup, device)
        loss = float(trainer.loss_sum) / max(1, steps + warmup)
    per_step = trainer.subnets / max(1, steps + warmup)
    out.update(
        {
            "batch": batch,
            "steps": steps,
            "subnets_per_step": per_step,
            "ms_per_step": round(1e3 * seconds / steps, 3),
            "steps_per_s": round(steps / seconds, 3),
            "images_per_s": round(batch * steps / seconds, 1),
            "subnet_images_per_s": round(batch * steps * per_step / seconds, 1),
            "mean_loss": round(loss, 4),
            "finite": bool(np.isfinite(loss)),
        }
    )
    return out


# ----- sections --------------------------------------------------------------------------------
def sizes(args: argparse.Namespace) -> list[Size]:
    # --smoke: 48 px stands in for 224 (the space fitted to 48 px images, stride-2 stem).
    big = 48 if args.smoke else 224
    return [
        Size("224", big, 1000, args.batch_224, args.smoke),
        Size("32", 32, 10, args.batch_32, args.smoke),
    ]


def section_throughput(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    plan = Plan(random_subnets=args.random_subnets)
    out: dict[str, Any] = {
        "what": "images/s of supernet sandwich steps (largest + smallest + sampled, distilled)",
        "plan": plan.__dict__,
    }
    for size in sizes(args):
        space = size.space()
        entry: dict[str, Any] = {"space": space.spec()}
        for precision in PRECISIONS:
            r = train_rate(
                space,
                space,
                plan,
                device,
                precision,
                size.batch,
                size.side,
                size.classes,
                args.steps,
                args.warmup,
            )
            entry[precision] = r
            print(f"throughput {size.name} {precision}: {r}", flush=True)
        entry["bf16_speedup"] = round(
            entry["bf16"]["images_per_s"] / max(entry["fp32"]["images_per_s"], 1e-9), 3
        )
        out[size.name] = entry
    return out


def _plain_step(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, precision: str
) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(device, precision):
            out = model(x)
        F.cross_entropy(out.float(), y).backward()
        opt.step()

    return step


def section_elastic(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    out: dict[str, Any] = {
        "what": "train step of the supernet (arch active) over the extracted static subnet",
        "target_ratio_max": TARGET_RATIO,
        "repeats": args.repeats,
    }
    worst = 0.0
    for size in sizes(args):
        space = size.space()
        entry: dict[str, Any] = {}
        for precision in PRECISIONS:
            for name, arch in (("largest", space.max_arch()), ("smallest", space.min_arch())):
                torch.manual_seed(0)
                net = build_supernet(space)
                net.set_active(arch)
                static = net.extract(arch).to(device).train()
                net = net.to(device).train()
                x, y = batch_on(device, size.batch, size.side, size.classes)
                xa = net.prepare_input(x)  # the arch's resolution
                sup, sta = interleaved(
                    _plain_step(net, xa, y, device, precision),
                    _plain_step(static, xa, y, device, precision),
                    args.repeats,
                    args.warmup,
                    device,
                )
                med_sup, med_sta = statistics.median(sup), statistics.median(sta)
                ratio = med_sup / med_sta
                worst = max(worst, ratio)
                entry[f"{precision}_{name}"] = {
                    "arch": space.short(arch),
                    "resolution": int(arch["resolution"]),
                    "supernet_ms_median": round(1e3 * med_sup, 3),
                    "static_ms_median": round(1e3 * med_sta, 3),
                    "ratio": round(ratio, 4),
                    "meets_target": ratio <= TARGET_RATIO,
                }
                print(f"elastic {size.name} {precision} {name}: ratio {ratio:.3f}", flush=True)
        out[size.name] = entry
    out["worst_ratio"] = round(worst, 4)
    out["meets_target"] = worst <= TARGET_RATIO
    return out


def section_preset(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    preset, source = load_preset()
    space = get_space(**preset["space"])
    if args.smoke:
        space = get_space(**{**preset["space"], **SMOKE_OPTIONS})
    batch = args.batch_32 if args.smoke else int(preset["batch_size"])
    steps_per_epoch = int(preset["steps_per_epoch"])
    out: dict[str, Any] = {
        "what": "estimated time of the default training preset on CIFAR-sized data: measured "
        "steps/s of each phase's view times its steps (training steps only: no per-epoch "
        "evaluation, sampler probes or data loading)",
        "preset_source": source,
        "n_train": preset["n_train"],
        "batch_size": batch,
        "steps_per_epoch": steps_per_epoch,
        "phases": {},
    }
    totals = dict.fromkeys(PRECISIONS, 0.0)
    for ph in preset["phases"]:
        view = phase_view(space, ph["unlock"])
        plan = Plan(
            sandwich=bool(ph["sandwich"]),
            random_subnets=int(ph["random_subnets"]),
            distill=bool(preset["distill"]),
            label_smoothing=float(preset["label_smoothing"]),
            grad_clip=float(preset["grad_clip"]),
        )
        steps = int(ph["epochs"]) * steps_per_epoch
        entry: dict[str, Any] = {"epochs": ph["epochs"], "steps": steps, "plan": plan.__dict__}
        for precision in PRECISIONS:
            classes = int(preset["space"]["num_classes"])
            r = train_rate(
                space,
                view,
                plan,
                device,
                precision,
                batch,
                32,
                classes,
                args.preset_steps,
                args.warmup,
            )
            seconds = steps / max(r["steps_per_s"], 1e-9)
            totals[precision] += seconds
            entry[precision] = {**r, "estimated_s": round(seconds, 1)}
        out["phases"][ph["name"]] = entry
        print(f"preset {ph['name']}: {entry}", flush=True)
    out["estimated_total_s"] = {k: round(v, 1) for k, v in totals.items()}
    out["estimated_total_min"] = {k: round(v / 60, 2) for k, v in totals.items()}
    return out


SECTIONS = ("throughput", "elastic", "preset")


# ----- the report ------------------------------------------------------------------------------
def environment(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "device": str(device),
        "cuda_available": torch.cuda.is_available(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            {
                "gpu": props.name,
                "gpu_memory_mib": props.total_memory // 2**20,
                "multiprocessors": props.multi_processor_count,
                "capability": f"{props.major}.{props.minor}",
                "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(),
                "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
                "cudnn_tf32": torch.backends.cudnn.allow_tf32,
                "cudnn_benchmark": torch.backends.cudnn.benchmark,
            }
        )
    return env


def write(report: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    dest = os.environ.get("OUT")
    if dest and Path(dest).is_dir():
        shutil.copy(path, Path(dest) / path.name)
    return path


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="the same code on the CPU, tiny sizes")
    ap.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per throughput run")
    ap.add_argument("--preset-steps", type=int, default=None, help="timed steps per phase")
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None, help="interleaved rounds (elastic)")
    ap.add_argument("--batch-224", type=int, default=None)
    ap.add_argument("--batch-32", type=int, default=None)
    ap.add_argument("--random-subnets", type=int, default=1, help="sampled per sandwich step")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--write-preset", action="store_true", help=f"write {PRESET.name} and stop")
    args = ap.parse_args(argv)
    small = args.smoke
    defaults = {
        "steps": 2 if small else 30,
        "preset_steps": 2 if small else 20,
        "warmup": 1 if small else 5,
        "repeats": 3 if small else 25,
        "batch_224": 2 if small else 128,
        "batch_32": 4 if small else 128,
    }
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.out is None:
        args.out = RESULTS / ("gpu_scale_smoke.json" if small else "gpu_scale.json")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    if args.write_preset:
        PRESET.parent.mkdir(parents=True, exist_ok=True)
        PRESET.write_text(json.dumps(preset_from_config(), indent=1) + "\n")
        print(f"wrote {PRESET}")
        return {}
    command = "python -m benchmarks.gpu_scale " + " ".join(sys.argv[1:] if argv is None else argv)
    device = torch.device("cpu") if args.smoke else resolve_device("auto")
    report: dict[str, Any] = {"benchmark": "gpu_scale", "command": command.strip()}
    if device.type != "cuda" and not args.smoke:
        report.update(
            {
                "status": "skipped",
                "reason": "no CUDA device (torch.cuda.is_available() is False); nothing measured",
                "environment": environment(device),
            }
        )
        print(f"gpu_scale: no CUDA device; wrote {write(report, args.out)}")
        return report
    report["status"] = "smoke (CPU, tiny sizes: the numbers mean nothing)" if args.smoke else "ok"
    report["environment"] = environment(device)
    sections: dict[str, Any] = {}
    report["sections"] = sections
    t_start = time.perf_counter()
    for name in args.sections:
        t0 = time.perf_counter()
        fn = {"throughput": section_throughput, "elastic": section_elastic}.get(name)
        sections[name] = (fn or section_preset)(args, device)
        sections[name]["section_s"] = round(time.perf_counter() - t0, 1)
        write(report, args.out)  # after every section: a run cut short keeps what it measured
    report["wall_s"] = round(time.perf_counter() - t_start, 1)
    print(f"gpu_scale: wrote {write(report, args.out)} in {report['wall_s']} s")
    return report


if __name__ == "__main__":
    main()
