"""One training step of the sandwich rule, the adaptive sampler's probe, and subnet
evaluation with BN recalibration."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces import Arch
from workers.bn import calibration_batches, recalibrate_bn
from workers.training.distributed import Dist
from workers.training.samplers import SubnetSampler


def soft_cross_entropy(logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the teacher's (detached) probabilities; same gradient as KL."""
    return -(soft_targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


@dataclass
class StepPlan:
    """What one step trains: the sandwich ends (optional) and ``n`` sampled subnets."""

    largest: Arch
    smallest: Arch
    sandwich: bool
    random_subnets: int
    distill: bool
    label_smoothing: float
    best_of_mode: str = "best"


@dataclass
class StepResult:
    """What a step trained. ``losses`` are detached device tensors (reading one is a host
    sync; the trainer reads them only where it reports)."""

    losses: dict[str, torch.Tensor]
    archs: list[Arch] = field(default_factory=list)

    @property
    def total(self) -> float:
        return float(sum(float(v) for v in self.losses.values()))

    def host_losses(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.losses.items()}


def _forward(net: nn.Module, arch: Arch, x: torch.Tensor) -> torch.Tensor:
    net.set_active(arch)  # type: ignore[operator]
    out: torch.Tensor = net(net.prepare_input(x))  # type: ignore[operator]
    return out


def sandwich_step(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    plan: StepPlan,
    sampler: SubnetSampler | None,
    *,
    amp: Callable[[], AbstractContextManager[Any]] = nullcontext,
    dist: Dist | None = None,
) -> StepResult:
    """Forward and backward every subnet of the step; gradients accumulate in ``net``.

    The largest subnet learns from labels (with label smoothing); the others learn from its
    detached soft predictions when distillation is on, else from labels without smoothing.
    The caller zeroes gradients before and all-reduces, clips and steps the optimizer after.
    ``amp`` is the autocast context of the forward passes (losses are computed in fp32). On
    several ranks every rank draws the same subnets (same sampler seed); best-of-k scores are
    averaged over the ranks so that all of them keep the same candidate.
    """
    losses: dict[str, torch.Tensor] = {}
    archs: list[Arch] = []
    teacher: torch.Tensor | None = None
    train_largest = plan.sandwich or plan.random_subnets == 0

    def forward(arch: Arch) -> torch.Tensor:
        with amp():
            out = _forward(net, arch, x)
        return out.float()

    if train_largest:
        logits = forward(plan.largest)
        loss = F.cross_entropy(logits, y, label_smoothing=plan.label_smoothing)
        loss.backward()
        losses["largest"] = loss.detach()
        teacher = F.softmax(logits.detach(), dim=1)
        archs.append(plan.largest)
    elif plan.distill:
        with torch.no_grad():
            teacher = F.softmax(forward(plan.largest), dim=1)

    def student_loss(logits: torch.Tensor) -> torch.Tensor:
        if plan.distill and teacher is not None:
            return soft_cross_entropy(logits, teacher)
        return F.cross_entropy(logits, y)

    if plan.sandwich and plan.smallest != plan.largest:
        loss = student_loss(forward(plan.smallest))
        loss.backward()
        losses["smallest"] = loss.detach()
        archs.append(plan.smallest)
    sampled: list[torch.Tensor] = []
    for _ in range(plan.random_subnets if sampler is not None else 0):
        assert sampler is not None
        candidates = sampler.propose()
        arch = candidates[0]
        if len(candidates) > 1:
            # Best-of-k: score candidates on this minibatch without gradients, keep one (a
            # decision, so a host read; averaged over ranks so every rank keeps the same).
            with torch.no_grad():
                scores_t = torch.stack([student_loss(forward(a)) for a in candidates])
            if dist is not None and dist.active:
                dist.all_reduce_(scores_t)
            scores = scores_t.tolist()
            pick = min if plan.best_of_mode == "best" else max
            arch = candidates[scores.index(pick(scores))]
        loss = student_loss(forward(arch))
        loss.backward()
        sampler.accept(arch)
        sampled.append(loss.detach())
        archs.append(arch)
    if sampled:
        losses["random"] = torch.stack(sampled).mean()
    return StepResult(losses=losses, archs=archs)


def bn_batches(x: torch.Tensor, batch: int) -> Iterator[torch.Tensor]:
    """Consecutive batches of ``x`` (the shared BN-recalibration batching rule)."""
    return calibration_batches(x, batch)


def _bn_buffers(net: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [
        (t, t.detach().clone())
        for m in net.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        for t in (m.running_mean, m.running_var, m.num_batches_tracked)
        if t is not None
    ]


@torch.no_grad()
def probe_losses(
    net: nn.Module, archs: Sequence[Arch], x: torch.Tensor, y: torch.Tensor
) -> list[float]:
    """Cross-entropy of each arch on the fixed probe batch ``(x, y)``, as in training.

    Batch norm normalises with the probe batch's own statistics (train mode, as the training
    loss does) and dropout is off, so the value is a deterministic function of the weights:
    its change between probes measures progress, not noise. The BN running buffers are put
    back afterwards, so probing leaves the training run exactly as it was.
    """
    saved = _bn_buffers(net)
    was_training = net.training
    net.train()
    # Dropout off, BN left in train mode: the supernets call ``F.dropout(..., self.training)``
    # on their own flag (not recursive), dropout modules have theirs.
    net.training = False
    for m in net.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.training = False
    try:
        out = [float(F.cross_entropy(_forward(net, a, x), y)) for a in archs]
    finally:
        for t, v in saved:
            t.copy_(v)
        net.train(was_training)  # also puts dropout back in the mode of the net
    return out


@torch.no_grad()
def evaluate_archs(
    net: nn.Module,
    archs: Sequence[Arch],
    bn_x: torch.Tensor,
    bn_batch: int,
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int = 500,
) -> list[dict[str, float]]:
    """Accuracy and loss of each arch after BN recalibration on ``bn_x`` (training images)."""
    results = []
    for arch in archs:
        net.set_active(arch)  # type: ignore[operator]
        recalibrate_bn(net, (net.prepare_input(b) for b in bn_batches(bn_x, bn_batch)))  # type: ignore[operator]
        # Sums stay on the device: one host read per arch, not per batch.
        correct = torch.zeros((), dtype=torch.long, device=x.device)
        total_loss = torch.zeros((), dtype=torch.float32, device=x.device)
        for i in range(0, len(x), batch):
            logits = net(net.prepare_input(x[i : i + batch])).float()  # type: ignore[operator]
            correct += (logits.argmax(1) == y[i : i + batch]).sum()
            total_loss += F.cross_entropy(logits, y[i : i + batch], reduction="sum")
        results.append({"accuracy": int(correct) / len(x), "loss": float(total_loss) / len(x)})
    return results


def clip_gradients(net: nn.Module, limit: float, mode: str) -> None:
    params = [p for p in net.parameters() if p.grad is not None]
    if mode == "value":
        torch.nn.utils.clip_grad_value_(params, limit)
    else:
        torch.nn.utils.clip_grad_norm_(params, limit)
