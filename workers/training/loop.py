"""``train_supernet``: all progressive-shrinking phases in one call, resumable and guarded.

Per epoch: steps of the sandwich rule -> BN-recalibrated evaluation of the smallest, a middle
and the largest subnet of the phase -> health check -> atomic checkpoint -> callbacks. BN is
recalibrated on the subset ``workers.bn.calibration_indices`` picks for the run seed, the same
images ``SubnetEvaluator`` and the export use, so these scores match the search's. A
non-finite loss or a collapse of the largest subnet rolls back to the last checkpoint with a
lower learning rate, a bounded number of times. Every source of randomness derives from the
seed (data order from ``(seed, phase, epoch)``, the sampler's own generator, the global RNG
states in the checkpoint), so a resumed run ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from search_spaces import SearchSpace
from workers.bn import calibration_images
from workers.data import DatasetSplits
from workers.training.callbacks import Callback, CallbackList, progress_bar
from workers.training.checkpoint import (
    CHECKPOINT_DIR,
    FINAL_NAME,
    atomic_save,
    epoch_checkpoint_path,
    list_checkpoints,
    prune_checkpoints,
    rng_states,
    save_final,
    set_rng_states,
)
from workers.training.config import WIDTH_KINDS, PhaseConfig, TrainConfig, restrict_for_phase
from workers.training.optim import make_optimizer, set_lr, step_lr
from workers.training.samplers import SubnetSampler, make_sampler
from workers.training.steps import (
    StepPlan,
    clip_gradients,
    evaluate_archs,
    probe_losses,
    sandwich_step,
)


class TrainingDiverged(RuntimeError):
    """Training kept failing the health check after the allowed rollbacks."""


class TrainingCancelled(RuntimeError):
    """A callback asked to stop; the last epoch checkpoint remains for a later resume."""


class _Rollback(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class TrainResult:
    final_path: Path
    history: list[dict[str, Any]]
    rollbacks: int
    seconds: float
    final_metrics: dict[str, Any] = field(default_factory=dict)
    final_sha256: str = ""


def derive_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


class _Run:
    """Mutable state of one training run; ``state_dict`` is exactly what a checkpoint holds."""

    def __init__(
        self,
        space: SearchSpace,
        data: DatasetSplits,
        config: TrainConfig,
        run_dir: Path,
        callbacks: CallbackList,
        seed: int,
        device: torch.device,
    ):
        from search_spaces.nn import build_supernet

        self.space, self.config, self.run_dir = space, config, run_dir
        self.callbacks, self.seed, self.device = callbacks, seed, device
        torch.manual_seed(seed)
        self.net: nn.Module = build_supernet(space).to(device)
        x, y = data.tensors("train")
        self.x, self.y = x.to(device), y.to(device)
        vx, vy = data.tensors("val")
        cap = config.eval_max_images or len(vx)
        self.val_x, self.val_y = vx[:cap].to(device), vy[:cap].to(device)
        # The shared BN calibration rule (workers.bn): the subset search and export use too.
        self.bn_x = calibration_images(x, config.bn_images, seed).to(device)
        # The adaptive sampler's fixed probe batch: the same training images at every probe,
        # so a change of the probe loss is a change of the weights, not of the batch.
        g = torch.Generator().manual_seed(derive_seed(seed, 13))
        probe = torch.randperm(len(x), generator=g)[: config.sampler.probe_images]
        self.probe_x, self.probe_y = x[probe].to(device), y[probe].to(device)
        self.num_classes = data.num_classes
        self.phase, self.done = 0, 0  # current phase index, epochs completed in it
        self.phase_step = 0
        self.global_step = 0
        self.reordered = False
        self.rollbacks, self.lr_scale = 0, 1.0
        self.best_largest = 0.0
        self.history: list[dict[str, Any]] = []
        self.optimizer: torch.optim.Optimizer | None = None
        self.sampler: SubnetSampler | None = None
        self.view: SearchSpace = space

    # ----- checkpoints ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": "train/v1",
            "space": json.dumps(self.space.spec()),
            "config": self.config.model_dump_json(),
            "seed": self.seed,
            "model": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()},
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else {},
            "scheduler": {"phase_step": self.phase_step, "lr_scale": self.lr_scale},
            "sampler": json.dumps(self.sampler.state_dict()) if self.sampler else "",
            "rng": rng_states(),
            "phase": self.phase,
            "epoch": self.done,
            "global_step": self.global_step,
            "reordered": self.reordered,
            "health": {"rollbacks": self.rollbacks, "best_largest": self.best_largest},
            "history": json.dumps(self.history),
        }

    def save(self) -> Path:
        path = epoch_checkpoint_path(self.run_dir, self.phase, self.done)
        atomic_save(self.state_dict(), path)
        prune_checkpoints(self.run_dir, self.config.keep_checkpoints)
        return path

    def load(self, path: Path) -> None:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("format") != "train/v1":
            raise ValueError(
                f"{path}: not an epoch checkpoint of a training run (final.pt holds weights "
                "only and cannot be resumed; pass a file from run_dir/checkpoints)"
            )
        if blob.get("config") != self.config.model_dump_json() or blob.get("seed") != self.seed:
            raise ValueError(
                f"{path}: checkpoint belongs to a run with a different config or seed; "
                "use another run_dir or resume=False"
            )
        self.net.load_state_dict(blob["model"])
        self.phase, self.done = int(blob["phase"]), int(blob["epoch"])
        self.global_step = int(blob["global_step"])
        self.phase_step = int(blob["scheduler"]["phase_step"])
        self.lr_scale = float(blob["scheduler"]["lr_scale"])
        self.reordered = bool(blob["reordered"])
        self.rollbacks = int(blob["health"]["rollbacks"])
        self.best_largest = float(blob["health"]["best_largest"])
        self.history = json.loads(blob["history"])
        self.optimizer, self.sampler = None, None
        if self.phase < len(self.config.phases) and self.done < self.phases[self.phase].epochs:
            self.enter_phase(fresh=False)
            assert self.optimizer is not None and self.sampler is not None
            if blob["optimizer"]:
                self.optimizer.load_state_dict(blob["optimizer"])
            if blob["sampler"]:
                self.sampler.load_state_dict(json.loads(blob["sampler"]))
        set_rng_states(blob["rng"])

    # ----- phases -----------------------------------------------------------------------
    @property
    def phases(self) -> list[PhaseConfig]:
        return self.config.phases

    def enter_phase(self, *, fresh: bool) -> None:
        ph = self.phases[self.phase]
        self.view = restrict_for_phase(self.space, ph)
        if fresh:
            self.phase_step = 0
            if not self.reordered and any(k in ph.unlock for k in WIDTH_KINDS):
                # Importance-sort channels once, before the first width-shrinking phase, so
                # that slicing the first channels keeps the most important ones.
                self.net.reorder_channels()  # type: ignore[operator]
                self.reordered = True
        # A new optimizer per phase: momentum buffers would not follow a channel reorder.
        self.optimizer = make_optimizer(self.net, ph.lr, self.config)
        self.sampler = make_sampler(
            self.view, self.config.sampler, derive_seed(self.seed, 11, self.phase)
        )

    def steps_per_epoch(self) -> int:
        return max(1, len(self.x) // self.config.batch_size)

    # ----- one epoch --------------------------------------------------------------------
    def run_epoch(self) -> dict[str, Any]:
        ph = self.phases[self.phase]
        assert self.optimizer is not None and self.sampler is not None
        self.sampler.reset_histogram()
        bs, n_steps = self.config.batch_size, self.steps_per_epoch()
        total_steps = n_steps * ph.epochs
        g = torch.Generator().manual_seed(derive_seed(self.seed, 3, self.phase, self.done))
        perm = torch.randperm(len(self.x), generator=g).to(self.device)
        plan = StepPlan(
            largest=self.view.max_arch(),
            smallest=self.view.min_arch(),
            sandwich=ph.sandwich,
            random_subnets=ph.random_subnets,
            distill=self.config.distill,
            label_smoothing=self.config.label_smoothing,
            best_of_mode=self.config.sampler.best_of_mode,
        )
        self.net.train()
        sums: dict[str, float] = {}
        images, t0 = 0, time.perf_counter()
        bar = progress_bar(n_steps, f"{ph.name} {self.done + 1}/{ph.epochs}")
        lr = 0.0
        for step in range(n_steps):
            if self.callbacks.should_stop():
                raise TrainingCancelled(
                    f"training cancelled at phase '{ph.name}' epoch {self.done + 1} step "
                    f"{step}; the last checkpoint in {self.run_dir / CHECKPOINT_DIR} remains, "
                    "call again with resume=True to continue"
                )
            ts = time.perf_counter()
            idx = perm[step * bs : (step + 1) * bs]
            lr = step_lr(ph.lr * self.lr_scale, self.phase_step, total_steps, self.config)
            set_lr(self.optimizer, lr)
            if self.sampler.probe_due(self.phase_step):
                # Keyed on the phase step, which a checkpoint restores: a resumed run probes at
                # the same steps as an uninterrupted one.
                archs = self.sampler.probe_archs
                self.sampler.observe_probe(
                    probe_losses(self.net, archs, self.probe_x, self.probe_y)
                )
            self.optimizer.zero_grad(set_to_none=True)
            res = sandwich_step(self.net, self.x[idx], self.y[idx], plan, self.sampler)
            if not math.isfinite(res.total):
                raise _Rollback(f"non-finite loss {res.total} at step {self.global_step}")
            clip_gradients(self.net, self.config.grad_clip, self.config.grad_clip_mode)
            self.optimizer.step()
            self.phase_step += 1
            self.global_step += 1
            images += len(idx)
            for k, v in res.losses.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.update(1)
            self.callbacks.on_step(
                {
                    "phase": ph.name,
                    "phase_index": self.phase,
                    "epoch": self.done + 1,
                    "step": step + 1,
                    "steps": n_steps,
                    "global_step": self.global_step,
                    "losses": res.losses,
                    "lr": lr,
                    "throughput": len(idx) / max(time.perf_counter() - ts, 1e-9),
                    "flops": [self.space.flops(a) for a in res.archs],
                },
                self.net,
            )
        bar.close()
        seconds = time.perf_counter() - t0
        if not all(bool(torch.isfinite(p).all()) for p in self.net.parameters()):
            raise _Rollback(f"non-finite weights after phase '{ph.name}' epoch {self.done + 1}")
        return {
            "phase": ph.name,
            "phase_index": self.phase,
            "epoch": self.done + 1,
            "epochs": ph.epochs,
            # The position in the whole schedule, so progress reads across every phase.
            "global_epoch": sum(q.epochs for q in self.phases[: self.phase]) + self.done + 1,
            "total_epochs": self.config.total_epochs(),
            "global_step": self.global_step,
            "losses": {k: v / n_steps for k, v in sums.items()},
            "lr": lr,
            "throughput": images / max(seconds, 1e-9),
            "seconds": seconds,
            "flops_histogram": self.sampler.histogram(),
        }

    def evaluate(self) -> dict[str, dict[str, float]]:
        assert self.sampler is not None
        named = {
            "smallest": self.view.min_arch(),
            "middle": self.sampler.middle,
            "largest": self.view.max_arch(),
        }
        # In the full-network phase all three are the same arch: evaluate each arch once.
        unique = {self.space.encode(a): a for a in named.values()}
        rs = evaluate_archs(
            self.net, list(unique.values()), self.bn_x, self.config.bn_batch, self.val_x, self.val_y
        )
        scores = dict(zip(unique, rs, strict=True))
        self.net.train()
        return {
            k: {**scores[self.space.encode(a)], "flops": float(self.space.flops(a))}
            for k, a in named.items()
        }

    def check_health(self, largest_acc: float) -> None:
        if not math.isfinite(largest_acc):
            raise _Rollback("non-finite evaluation of the largest subnet")
        hc = self.config.health
        chance = 1.0 / self.num_classes
        if self.best_largest >= chance + hc.min_margin:
            floor = chance + hc.collapse_fraction * (self.best_largest - chance)
            if largest_acc < floor:
                raise _Rollback(
                    f"largest subnet collapsed: val accuracy {largest_acc:.3f} after a best of "
                    f"{self.best_largest:.3f} (chance {chance:.3f})"
                )
        self.best_largest = max(self.best_largest, largest_acc)


def train_supernet(
    space: SearchSpace,
    data: DatasetSplits,
    config: TrainConfig,
    *,
    run_dir: Path | str,
    callbacks: Sequence[Callback] = (),
    seed: int | None = None,
    device: str = "cpu",
    resume: bool | Path | str = True,
) -> TrainResult:
    """Train a supernet of ``space`` on ``data`` through every phase of ``config``.

    ``seed`` defaults to ``config.seed``. ``resume=True`` continues from the latest epoch
    checkpoint in ``run_dir`` (if any); a path resumes from that checkpoint; ``False`` starts
    over. Writes ``run_dir/final.pt`` (weights only; see ``load_checkpoint``).
    """
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    seed = config.seed if seed is None else seed
    cbs = CallbackList(list(callbacks))
    run = _Run(space, data, config, run_dir, cbs, seed, torch.device(device))
    existing = list_checkpoints(run_dir)
    if isinstance(resume, (str, Path)):
        run.load(Path(resume))
    elif resume and existing:
        run.load(existing[-1])
    else:
        if existing:
            shutil.rmtree(run_dir / CHECKPOINT_DIR)
        run.enter_phase(fresh=True)
        run.save()  # the state before training: the first rollback target
    while run.phase < len(config.phases):
        ph = config.phases[run.phase]
        if run.done >= ph.epochs:
            run.phase, run.done = run.phase + 1, 0
            if run.phase < len(config.phases):
                run.enter_phase(fresh=True)
            continue
        try:
            info = run.run_epoch()
            info["accuracy"] = run.evaluate()
            run.check_health(info["accuracy"]["largest"]["accuracy"])
        except _Rollback as rb:
            _roll_back(run, rb.reason)
            continue
        run.done += 1
        info["rollbacks"] = run.rollbacks
        run.history.append(info)
        info["checkpoint"] = str(run.save())
        cbs.on_epoch(info, run.net)
    final = run_dir / FINAL_NAME
    last = run.history[-1] if run.history else {}
    save_final(space, run.net, final, {"seed": seed, "metrics": last.get("accuracy", {})})
    history = run_dir / "history.json"
    tmp = history.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(run.history, indent=1))
    tmp.replace(history)
    return TrainResult(
        final_path=final,
        history=run.history,
        rollbacks=run.rollbacks,
        seconds=time.perf_counter() - t0,
        final_metrics=last.get("accuracy", {}),
        final_sha256=hashlib.sha256(final.read_bytes()).hexdigest(),
    )


def _roll_back(run: _Run, reason: str) -> None:
    hc = run.config.health
    rollbacks = run.rollbacks + 1
    lr_scale = run.lr_scale * hc.lr_factor
    ph = run.phases[run.phase]
    if rollbacks > hc.max_rollbacks:
        raise TrainingDiverged(
            f"training diverged in phase '{ph.name}' epoch {run.done + 1}: {reason}; gave up "
            f"after {hc.max_rollbacks} rollback(s) (learning rate scaled down to "
            f"{run.lr_scale:g} of the configured value). Lower the phase lr or raise "
            "health.max_rollbacks."
        )
    checkpoints = list_checkpoints(run.run_dir)
    run.load(checkpoints[-1])
    # The checkpoint predates the failure: keep the new count and the lower learning rate.
    run.rollbacks, run.lr_scale = rollbacks, lr_scale
    print(
        f"health guard: {reason}; rolled back to {checkpoints[-1].name} with lr x{lr_scale:g} "
        f"({rollbacks}/{hc.max_rollbacks})",
        file=sys.stderr,
    )
    run.callbacks.on_rollback({"reason": reason, "rollbacks": rollbacks, "lr_scale": lr_scale})
