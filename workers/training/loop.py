"""``train_supernet``: all progressive-shrinking phases in one call, resumable and guarded.

Per epoch: steps of the sandwich rule -> BN-recalibrated evaluation of the smallest, a middle
and the largest subnet of the phase -> health check -> atomic checkpoint -> callbacks. BN is
recalibrated on the subset ``workers.bn.calibration_indices`` picks for the run seed, the same
images ``SubnetEvaluator`` and the export use, so these scores match the search's. A
non-finite loss or a collapse of the largest subnet rolls back to the last checkpoint with a
lower learning rate, a bounded number of times. Every source of randomness derives from the
seed (data order from ``(seed, phase, epoch)``, the sampler's own generator, the global RNG
states in the checkpoint), so a resumed run ends with the weights of an uninterrupted one.

Data comes through the ``DatasetSplits`` contract (``batches`` for this rank's share of each
global batch from a step on, ``rows`` for the BN calibration subset, the probe batch and the
validation images), so nothing needs the whole split in memory. Mid-epoch checkpoints (every
``checkpoint_every_steps`` steps or ``checkpoint_every_s`` seconds) hold the step, the loss sums
of the epoch so far, the optimizer, sampler and RNG states: a run resumed from one continues at
that step with the same data order.

Data parallel (``dist`` with more than one rank, see ``workers.training.distributed``): every
rank holds the same weights and draws the same subnets, trains on its share of the global batch
(``config.batch_size``, so the learning-rate schedule follows the global batch whatever the
number of ranks), batch norm uses global-batch statistics, and the step's gradients are
averaged in one all-reduce. Rank 0 evaluates, checkpoints and writes ``final.pt``; decisions
(stop, roll back, checkpoint now) are all-reduced every ``sync_every`` steps so that every rank
takes them at the same step. Device reads of the losses happen at those points only.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from search_spaces import SearchSpace
from workers.bn import calibration_indices
from workers.data import DatasetSplits
from workers.devices import resolve_device, to_device
from workers.training.callbacks import Callback, CallbackList, progress_bar
from workers.training.checkpoint import (
    CHECKPOINT_DIR,
    FINAL_NAME,
    atomic_save,
    checkpoint_position,
    epoch_checkpoint_path,
    list_checkpoints,
    prune_checkpoints,
    rng_states,
    save_final,
    set_rng_states,
    step_checkpoint_path,
)
from workers.training.config import WIDTH_KINDS, PhaseConfig, TrainConfig, restrict_for_phase
from workers.training.distributed import Dist, autocast, local_batch_norm, sync_batch_norm
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


CheckpointHook = Callable[[Path | None, dict[str, Any]], None]


@dataclass
class RunOptions:
    """How a run executes (not what it trains: none of this is part of the checkpointed
    config, so a run may resume on another device or number of ranks)."""

    device: str = "cpu"  # "auto": CUDA when this process sees a GPU
    precision: str = "fp32"  # "bf16": autocast on CUDA (fp32 on the CPU)
    dist: Dist = field(default_factory=Dist)
    # Several ranks: batch norm on the global batch's statistics (the run computes what one
    # rank would) or, False, on each rank's own share (plain DDP, no per-layer all-reduces).
    sync_bn: bool = False
    checkpoint_every_steps: int | None = None  # mid-epoch checkpoints, by steps ...
    checkpoint_every_s: float | None = None  # ... or by time (at the next sync point)
    sync_every: int = 10  # steps between collective decisions / loss reads (CUDA, ranks > 1)
    # After every checkpoint, on every rank (rank 0 gets the file, the others None): Ray Train
    # reports it there. It may also act as the ranks' barrier.
    on_checkpoint: CheckpointHook | None = None


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
        options: RunOptions,
    ):
        from search_spaces.nn import build_supernet

        self.space, self.config, self.run_dir = space, config, run_dir
        self.data, self.options = data, options
        self.callbacks, self.seed = callbacks, seed
        self.dist = options.dist
        self.device = device = resolve_device(options.device)
        self.precision = options.precision
        torch.manual_seed(seed)  # the same initial weights on every rank
        self.net: nn.Module = build_supernet(space).to(device)
        if options.sync_bn:
            sync_batch_norm(self.net, self.dist)
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        n_train = data.sizes()["train"]
        self.num_classes = data.num_classes
        self.bn_x = self.val_x = self.val_y = torch.zeros(0)
        if self.dist.is_main:
            # Only rank 0 evaluates. The shared BN calibration rule (workers.bn): the subset
            # search and export use too, read as rows of the training split.
            n_val = data.sizes()["val"]
            cap = min(config.eval_max_images or n_val, n_val)
            vx, vy = data.rows("val", torch.arange(cap))
            self.val_x, self.val_y = vx.to(device), vy.to(device)
            bx, _ = data.rows("train", calibration_indices(n_train, config.bn_images, seed))
            self.bn_x = bx.to(device)
        # The adaptive sampler's fixed probe batch: the same training images at every probe
        # (and on every rank), so a change of the probe loss is a change of the weights.
        g = torch.Generator().manual_seed(derive_seed(seed, 13))
        probe = torch.randperm(n_train, generator=g)[: config.sampler.probe_images]
        px, py = data.rows("train", probe)
        self.probe_x, self.probe_y = px.to(device), py.to(device)
        self.phase, self.done = 0, 0  # current phase index, epochs completed in it
        self.step = 0  # steps done in the current epoch (a mid-epoch checkpoint's position)
        self.epoch_sums: dict[str, float] = {}  # loss sums of the current epoch so far
        self.epoch_seconds = 0.0
        self.phase_step = 0
        self.global_step = 0
        self.reordered = False
        self.rollbacks, self.lr_scale = 0, 1.0
        self.best_largest = 0.0
        self.history: list[dict[str, Any]] = []
        self.optimizer: torch.optim.Optimizer | None = None
        self.sampler: SubnetSampler | None = None
        self.view: SearchSpace = space
        self._last_checkpoint = (time.monotonic(), 0)  # (time, global step)

    # ----- checkpoints ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": "train/v1",
            "space": json.dumps(self.space.spec()),
            "config": self.config.model_dump_json(),
            "seed": self.seed,
            "model": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()},
            "optimizer": _to_cpu(self.optimizer.state_dict()) if self.optimizer else {},
            "scheduler": {"phase_step": self.phase_step, "lr_scale": self.lr_scale},
            "sampler": json.dumps(self.sampler.state_dict()) if self.sampler else "",
            "rng": rng_states(),
            "phase": self.phase,
            "epoch": self.done,
            "step": self.step,
            "epoch_sums": json.dumps(self.epoch_sums),
            "epoch_seconds": self.epoch_seconds,
            "global_step": self.global_step,
            "reordered": self.reordered,
            "health": {"rollbacks": self.rollbacks, "best_largest": self.best_largest},
            "history": json.dumps(self.history),
        }

    def save(self) -> Path:
        """Rank 0 writes the checkpoint of the current position; every rank then calls the
        checkpoint hook (and waits for the others), so all see the file afterwards."""
        if self.step:
            path = step_checkpoint_path(self.run_dir, self.phase, self.done, self.step)
        else:
            path = epoch_checkpoint_path(self.run_dir, self.phase, self.done)
        if self.dist.is_main:
            atomic_save(self.state_dict(), path)
            prune_checkpoints(self.run_dir, self.config.keep_checkpoints)
        self._last_checkpoint = (time.monotonic(), self.global_step)
        hook = self.options.on_checkpoint
        info = {"phase": self.phase, "epoch": self.done, "step": self.step}
        if hook is not None:
            hook(path if self.dist.is_main else None, {**info, "global_step": self.global_step})
        self.dist.barrier()
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
        self.step = int(blob.get("step", 0))
        self.epoch_sums = json.loads(blob.get("epoch_sums", "{}"))
        self.epoch_seconds = float(blob.get("epoch_seconds", 0.0))
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
        self._last_checkpoint = (time.monotonic(), self.global_step)

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
        # The same seed on every rank: all ranks draw the same subnets at every step.
        self.sampler = make_sampler(
            self.view, self.config.sampler, derive_seed(self.seed, 11, self.phase)
        )

    def steps_per_epoch(self) -> int:
        return self.data.steps("train", self.config.batch_size)

    def total_steps(self) -> int:
        return self.steps_per_epoch() * self.config.total_epochs()

    def position(self) -> int:
        """Steps of the schedule done (a rerun after a rollback does not count twice)."""
        n = self.steps_per_epoch()
        before = sum(q.epochs for q in self.phases[: self.phase]) + self.done
        return before * n + self.step

    def _batches(self, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        kwargs: dict[str, Any] = {}
        augment = getattr(self.config, "augment", None)
        if augment:
            kwargs["augment"] = augment
        return self.data.batches(
            "train",
            self.config.batch_size,
            seed=derive_seed(self.seed, 3, self.phase),
            epoch=self.done,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            start_step=start,
            **kwargs,
        )

    def _sync_every(self) -> int:
        # One process on the CPU: reading a loss costs nothing, so every step is a sync point
        # (the loss is checked and reported at every step).
        if not self.dist.active and self.device.type == "cpu":
            return 1
        return max(1, self.options.sync_every)

    def _checkpoint_due(self) -> bool:
        when, at = self._last_checkpoint
        every_steps, every_s = self.options.checkpoint_every_steps, self.options.checkpoint_every_s
        if every_steps and self.global_step - at >= every_steps:
            return True
        return bool(every_s) and time.monotonic() - when >= float(every_s or 0)

    # ----- one epoch --------------------------------------------------------------------
    def run_epoch(self) -> dict[str, Any]:
        ph = self.phases[self.phase]
        assert self.optimizer is not None and self.sampler is not None
        if self.step == 0:
            self.sampler.reset_histogram()
            self.epoch_sums, self.epoch_seconds = {}, 0.0
        bs, n_steps = self.config.batch_size, self.steps_per_epoch()
        total_steps = n_steps * ph.epochs
        world = self.dist.world_size
        plan = StepPlan(
            largest=self.view.max_arch(),
            smallest=self.view.min_arch(),
            sandwich=ph.sandwich,
            random_subnets=ph.random_subnets,
            distill=self.config.distill,
            label_smoothing=self.config.label_smoothing,
            best_of_mode=self.config.sampler.best_of_mode,
        )

        def amp() -> Any:
            return autocast(self.device, self.precision)

        self.net.train()
        window: dict[str, torch.Tensor] = {}  # device sums since the last sync point
        window_steps = 0
        host_losses: dict[str, float] = {}
        sync_every = self._sync_every()
        t0 = time.perf_counter()
        seconds_before = self.epoch_seconds
        bar = progress_bar(n_steps - self.step, f"{ph.name} {self.done + 1}/{ph.epochs}")
        lr = 0.0
        start = self.step
        for step, (xb, yb) in zip(range(start, n_steps), self._batches(start), strict=False):
            if not self.dist.active and self.callbacks.should_stop():
                raise self._cancelled(ph, step)
            ts = time.perf_counter()
            x, y = to_device(xb, self.device), to_device(yb, self.device)
            lr = step_lr(ph.lr * self.lr_scale, self.phase_step, total_steps, self.config)
            set_lr(self.optimizer, lr)
            if self.sampler.probe_due(self.phase_step):
                # Keyed on the phase step, which a checkpoint restores: a resumed run probes at
                # the same steps as an uninterrupted one. Same batch on every rank: local BN.
                archs = self.sampler.probe_archs
                with local_batch_norm(self.net):
                    losses = probe_losses(self.net, archs, self.probe_x, self.probe_y)
                self.sampler.observe_probe(losses)
            self.optimizer.zero_grad(set_to_none=True)
            res = sandwich_step(self.net, x, y, plan, self.sampler, amp=amp, dist=self.dist)
            self.dist.all_reduce_gradients(self.params)
            clip_gradients(self.net, self.config.grad_clip, self.config.grad_clip_mode)
            self.optimizer.step()
            self.phase_step += 1
            self.global_step += 1
            self.step = step + 1
            for k, v in res.losses.items():
                window[k] = window[k] + v if k in window else v
            window_steps += 1
            last = self.step == n_steps
            checkpoint_now = False
            if self.step % sync_every == 0 or last:
                stop, due, host_losses = self._sync(window, window_steps)
                window, window_steps = {}, 0
                if stop:
                    raise self._cancelled(ph, self.step)
                checkpoint_now = due and not last
            bar.update(1)
            now = time.perf_counter()
            self.epoch_seconds = seconds_before + (now - t0)
            done_steps = self.step - start
            rate = done_steps * bs / max(now - t0, 1e-9)  # global images per second
            eta = (self.total_steps() - self.position()) * bs / max(rate, 1e-9)
            self.callbacks.on_step(
                {
                    "phase": ph.name,
                    "phase_index": self.phase,
                    "epoch": self.done + 1,
                    "epochs": ph.epochs,
                    "step": self.step,
                    "steps": n_steps,
                    "global_step": self.global_step,
                    "position": self.position(),
                    "total_steps": self.total_steps(),
                    "losses": dict(host_losses),
                    "lr": lr,
                    "throughput": len(xb) * world / max(now - ts, 1e-9),
                    "images_per_s": rate,
                    "eta_s": eta,
                    "world_size": world,
                    "flops": [self.space.flops(a) for a in res.archs],
                },
                self.net,
            )
            if checkpoint_now:
                if not self._finite_weights():
                    raise _Rollback(f"non-finite weights at step {self.global_step}")
                self.save()
        bar.close()
        if not self._finite_weights():
            raise _Rollback(f"non-finite weights after phase '{ph.name}' epoch {self.done + 1}")
        seconds = self.epoch_seconds
        return {
            "phase": ph.name,
            "phase_index": self.phase,
            "epoch": self.done + 1,
            "epochs": ph.epochs,
            # The position in the whole schedule, so progress reads across every phase.
            "global_epoch": sum(q.epochs for q in self.phases[: self.phase]) + self.done + 1,
            "total_epochs": self.config.total_epochs(),
            "global_step": self.global_step,
            "losses": {k: v / n_steps for k, v in self.epoch_sums.items()},
            "lr": lr,
            "throughput": n_steps * bs / max(seconds, 1e-9),
            "seconds": seconds,
            "world_size": world,
            "flops_histogram": self.sampler.histogram(),
        }

    def _sync(
        self, window: dict[str, torch.Tensor], steps: int
    ) -> tuple[bool, bool, dict[str, float]]:
        """The sync point: one host read (and, on several ranks, one all-reduce) of the loss
        sums since the last one and of the decisions: stop, checkpoint now. A non-finite loss
        rolls back (every rank sees the same reduced sums, so all roll back together)."""
        keys = sorted(window)
        stop = float(self.callbacks.should_stop()) if self.dist.is_main else 0.0
        due = float(self._checkpoint_due()) if self.dist.is_main else 0.0
        flags = torch.tensor([stop, due], dtype=torch.float32, device=self.device)
        values = torch.stack([window[k].float() for k in keys]) if keys else flags[:0]
        packed = torch.cat([flags, values])
        if self.dist.active:
            self.dist.all_reduce_(packed)
            packed[2:] /= self.dist.world_size
        host = packed.tolist()
        sums = dict(zip(keys, host[2:], strict=True))
        if not all(math.isfinite(v) for v in sums.values()):
            raise _Rollback(f"non-finite loss {sums} at step {self.global_step}")
        for k, v in sums.items():
            self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + v
        return host[0] > 0, host[1] > 0, {k: v / max(steps, 1) for k, v in sums.items()}

    def _finite_weights(self) -> bool:
        return bool(torch.stack([torch.isfinite(p).all() for p in self.net.parameters()]).all())

    def _cancelled(self, ph: PhaseConfig, step: int) -> TrainingCancelled:
        return TrainingCancelled(
            f"training cancelled at phase '{ph.name}' epoch {self.done + 1} step {step}; the "
            f"last checkpoint in {self.run_dir / CHECKPOINT_DIR} remains, call again with "
            "resume=True to continue"
        )

    def evaluate(self) -> dict[str, dict[str, float]]:
        """Rank 0 scores the smallest, a middle and the largest subnet; every rank gets them."""
        assert self.sampler is not None
        named = {
            "smallest": self.view.min_arch(),
            "middle": self.sampler.middle,
            "largest": self.view.max_arch(),
        }
        result: dict[str, dict[str, float]] | None = None
        if self.dist.is_main:
            # In the full-network phase all three are the same arch: evaluate each arch once.
            unique = {self.space.encode(a): a for a in named.values()}
            with local_batch_norm(self.net):
                rs = evaluate_archs(
                    self.net,
                    list(unique.values()),
                    self.bn_x,
                    self.config.bn_batch,
                    self.val_x,
                    self.val_y,
                )
            scores = dict(zip(unique, rs, strict=True))
            result = {
                k: {**scores[self.space.encode(a)], "flops": float(self.space.flops(a))}
                for k, a in named.items()
            }
        self.net.train()
        out: dict[str, dict[str, float]] = self.dist.broadcast_object(result)
        return out

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


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


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
    precision: str = "fp32",
    dist: Dist | None = None,
    sync_bn: bool = False,
    checkpoint_every_steps: int | None = None,
    checkpoint_every_s: float | None = None,
    sync_every: int = 10,
    on_checkpoint: CheckpointHook | None = None,
) -> TrainResult:
    """Train a supernet of ``space`` on ``data`` through every phase of ``config``.

    ``seed`` defaults to ``config.seed``. ``resume=True`` continues from the latest checkpoint
    in ``run_dir`` (if any, mid-epoch ones included); a path resumes from that checkpoint;
    ``False`` starts over. Writes ``run_dir/final.pt`` (weights only; see ``load_checkpoint``).
    ``device`` (``auto``, ``cpu``, ``cuda[:i]``), ``precision``, ``dist``, ``sync_bn`` and the
    checkpoint cadence say how the run executes (:class:`RunOptions`); on several ranks every
    rank calls this with the same arguments and its own ``dist``.
    """
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    seed = config.seed if seed is None else seed
    cbs = CallbackList(list(callbacks))
    options = RunOptions(
        device=device,
        precision=precision,
        dist=dist or Dist(),
        sync_bn=sync_bn,
        checkpoint_every_steps=checkpoint_every_steps,
        checkpoint_every_s=checkpoint_every_s,
        sync_every=sync_every,
        on_checkpoint=on_checkpoint,
    )
    run = _Run(space, data, config, run_dir, cbs, seed, options)
    main = run.dist.is_main
    existing = list_checkpoints(run_dir)
    if isinstance(resume, (str, Path)):
        run.load(Path(resume))
    elif resume and existing:
        run.load(existing[-1])
    else:
        if existing and main:
            shutil.rmtree(run_dir / CHECKPOINT_DIR)
        run.dist.barrier()
        run.enter_phase(fresh=True)
        run.save()  # the state before training: the first rollback target
    while run.phase < len(config.phases):
        ph = config.phases[run.phase]
        if run.done >= ph.epochs:
            run.phase, run.done, run.step = run.phase + 1, 0, 0
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
        run.done, run.step = run.done + 1, 0
        info["rollbacks"] = run.rollbacks
        run.history.append(info)
        info["checkpoint"] = str(run.save())
        cbs.on_epoch(info, run.net)
    final = run_dir / FINAL_NAME
    last = run.history[-1] if run.history else {}
    if main:
        save_final(space, run.net, final, {"seed": seed, "metrics": last.get("accuracy", {})})
        history = run_dir / "history.json"
        tmp = history.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(run.history, indent=1))
        tmp.replace(history)
    run.dist.barrier()
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
    # Back to the last epoch checkpoint, the last state the evaluation passed: a mid-epoch one
    # (for crash resume) may already hold what the health check caught at the epoch's end.
    checkpoints = list_checkpoints(run.run_dir)
    epoch_ends = [p for p in checkpoints if (checkpoint_position(p) or (0, 0, 1))[2] == 0]
    target = epoch_ends[-1]
    if run.dist.is_main:
        for p in checkpoints[checkpoints.index(target) + 1 :]:
            p.unlink(missing_ok=True)
    run.dist.barrier()
    checkpoints = [target]
    run.load(target)
    # The checkpoint predates the failure: keep the new count and the lower learning rate.
    run.rollbacks, run.lr_scale = rollbacks, lr_scale
    if run.dist.is_main:
        print(
            f"health guard: {reason}; rolled back to {checkpoints[-1].name} with lr "
            f"x{lr_scale:g} ({rollbacks}/{hc.max_rollbacks})",
            file=sys.stderr,
        )
    run.callbacks.on_rollback({"reason": reason, "rollbacks": rollbacks, "lr_scale": lr_scale})
