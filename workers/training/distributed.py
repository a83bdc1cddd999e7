"""Devices, mixed precision and data parallelism for the trainer, on plain ``torch``.

- :func:`resolve_device` and :func:`to_device` (``workers.devices``, the device rule training,
  evaluation and export share, re-exported here): ``"auto"`` is CUDA when this process sees a
  GPU, else the CPU; an explicit ``"cuda"`` without one is an error that says so.
- :func:`autocast`: bf16 autocast on CUDA when ``precision == "bf16"``; a no-op otherwise (the
  CPU path always trains in fp32, so CPU runs stay bit-reproducible).
- :class:`Dist`: this process's place in a data-parallel group (rank, world size) and the
  collectives the trainer needs. Every rank holds the same weights and samples the same
  subnets (the samplers' generators derive from the shared seed); each trains on its share of
  the global batch; :meth:`Dist.all_reduce_gradients` averages the gradients of the whole
  sandwich step in one flat all-reduce (DDP's per-backward hooks would all-reduce once per
  subnet). ``Dist()`` (world size 1) makes every collective a no-op.
- :func:`sync_batch_norm`: with more than one rank, batch-norm layers in training mode
  normalise with the statistics of the global batch (sums all-reduced with autograd), so a
  two-worker step computes the same function as a one-worker step on the same global batch.

The process group itself is set up by whoever starts the ranks (Ray Train's ``TorchTrainer``:
gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as torch_dist
from torch import nn

# The shared device rule, re-exported for the trainer and its callers.
from workers.devices import resolve_device as resolve_device
from workers.devices import to_device as to_device

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


def autocast_enabled(device: torch.device, precision: str) -> bool:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision == "bf16" and device.type == "cuda"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA for ``precision == "bf16"``, else a null context."""
    if autocast_enabled(device, precision):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class Dist:
    """A rank of a data-parallel group (``torch.distributed`` initialised when world > 1)."""

    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_gradients(self, params: Sequence[nn.Parameter]) -> None:
        """Average the gradients of ``params`` over the ranks in one flat all-reduce; a
        parameter no subnet of the step touched counts as a zero gradient on every rank."""
        if not self.active:
            return
        grads = []
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch_dist.all_reduce(flat)
        flat.div_(self.world_size)
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n

    def all_reduce_(self, t: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """In place: the sum (or max) of ``t`` over the ranks."""
        if self.active:
            reduce_op = torch_dist.ReduceOp.MAX if op == "max" else torch_dist.ReduceOp.SUM
            torch_dist.all_reduce(t, op=reduce_op)
        return t

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        torch_dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            torch_dist.barrier()


# ----- synchronised batch norm ----------------------------------------------------------------
_SYNC_OFF = "_nas_sync_bn_off"
_LOCAL = "_nas_local_forward"


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks, differentiable: every rank's loss depends on every rank's sums, so
    the gradient of a sum is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
        out = t.clone()
        torch_dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.contiguous().clone()
        torch_dist.all_reduce(out)
        return out


def _synced_forward(self: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """Batch norm over the first ``x.shape[1]`` channels with the global batch's statistics."""
    original: Callable[[torch.Tensor], torch.Tensor] = getattr(self, _LOCAL)
    if not self.training or getattr(self, _SYNC_OFF, False) or not torch_dist.is_initialized():
        return original(x)
    c = x.shape[1]
    dims = [0, *range(2, x.dim())]
    xf = x.float()
    count = torch.full((1,), xf.numel() / c, device=x.device, dtype=torch.float32)
    stats = torch.cat([xf.sum(dims), (xf * xf).sum(dims), count])
    stats = _AllReduceSum.apply(stats)  # the backward all-reduces the gradient too
    n = stats[-1]
    mean = stats[:c] / n
    var = (stats[c : 2 * c] / n - mean * mean).clamp_min(0.0)
    shape = [1, c] + [1] * (x.dim() - 2)
    y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
    if self.weight is not None:
        y = y * self.weight[:c].view(shape)
    if self.bias is not None:
        y = y + self.bias[:c].view(shape)
    if self.track_running_stats and self.running_mean is not None:
        assert self.running_var is not None and self.num_batches_tracked is not None
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            m = (
                1.0 / float(self.num_batches_tracked)
                if self.momentum is None
                else float(self.momentum)
            )
            unbiased = var.detach() * (n / (n - 1).clamp_min(1.0))
            self.running_mean[:c].mul_(1 - m).add_(mean.detach(), alpha=m)
            self.running_var[:c].mul_(1 - m).add_(unbiased, alpha=m)
    return y.to(x.dtype)


def sync_batch_norm(net: nn.Module, dist: Dist) -> None:
    """Make every batch-norm layer of ``net`` normalise with global-batch statistics in
    training mode when ``dist`` has more than one rank (each layer keeps its own forward for
    eval mode and for :func:`local_batch_norm`)."""
    if not dist.active:
        return
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not hasattr(m, "_nas_local_forward"):
            setattr(m, _LOCAL, m.forward)
            m.forward = types.MethodType(_synced_forward, m)  # type: ignore[method-assign]


@contextlib.contextmanager
def local_batch_norm(net: nn.Module) -> Iterator[None]:
    """Batch norm on this rank's batch only, inside the block: BN recalibration and the
    evaluation run on one rank, and the probe batch is the same on every rank."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        setattr(m, _SYNC_OFF, True)
    try:
        yield
    finally:
        for m in bns:
            setattr(m, _SYNC_OFF, False)
