"""Scoring subnets of a trained supernet: BN recalibrated, batched, cached per genotype.

For each arch: activate it in the supernet (no copy of the weights), reset and re-estimate the
batch-norm statistics on a fixed, seeded subset of the *training* split (skipped for a network
without batch norm, such as a LayerNorm transformer), then measure accuracy
and mean cross-entropy on the validation split (``split="test"`` only for final reports).
The subset and its batching follow ``workers.bn.calibration_indices`` / ``calibration_batches``,
the rule the trainer's per-epoch evaluation also uses: with the same seed (the job seed is the
training seed), image count and batch, a subnet gets the same score here as in training. The
supernet's own BN statistics and active arch are saved before and restored after every call, so
scoring leaves the supernet as it found it. Inputs resized for an arch's resolution are kept per
input shape, so scoring many subnets resizes each split once per resolution.

Device (``workers.devices.resolve_device``: ``auto``, ``cpu``, ``cuda[:i]``): the supernet is
moved there for a call's scoring and back where it was afterwards; the prepared inputs stay in
host memory (pinned on CUDA) and each batch, calibration and scoring alike, is copied over
without blocking the host. The correct count and the loss sum are accumulated on the device
(the loss in float64, which adds the per-batch sums exactly as Python floats would) and read
once per subnet, so the scores on the CPU are those of a per-batch host read, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.base import Genotype
from search_spaces.nn import Supernet
from workers.bn import (
    BN_BATCH,
    BN_IMAGES,
    calibration_batches,
    calibration_indices,
    has_batch_norm,
    recalibrate_bn,
)
from workers.data.base import DatasetSplits
from workers.devices import resolve_device, to_device

SPLITS = ("val", "test")


def _bn_state(net: nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for name, m in net.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            for buf in ("running_mean", "running_var", "num_batches_tracked"):
                t = getattr(m, buf, None)
                if t is not None:
                    out[f"{name}.{buf}"] = t.detach().clone()
    return out


def _restore_bn(net: nn.Module, saved: Mapping[str, torch.Tensor]) -> None:
    for name, m in net.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            for buf in ("running_mean", "running_var", "num_batches_tracked"):
                key = f"{name}.{buf}"
                if key in saved:
                    getattr(m, buf).copy_(saved[key])


def _device_of(net: nn.Module) -> torch.device:
    for t in (*net.parameters(), *net.buffers()):
        return t.device
    return torch.device("cpu")


class SubnetEvaluator:
    def __init__(
        self,
        supernet: Supernet,
        data: DatasetSplits,
        *,
        seed: int = 0,
        bn_images: int = BN_IMAGES,
        bn_batch: int = BN_BATCH,
        batch_size: int = 500,
        device: str | torch.device = "cpu",
    ):
        if bn_images < 1 or bn_batch < 1 or batch_size < 1:
            raise ValueError(
                f"bn_images, bn_batch and batch_size must be >= 1; got {bn_images}, "
                f"{bn_batch}, {batch_size}"
            )
        self.net = supernet
        self.space = supernet.space
        self.data = data
        self.device = resolve_device(device)
        self.bn_batch = bn_batch
        self.batch_size = batch_size
        idx = calibration_indices(data.sizes()["train"], bn_images, seed)
        # The calibration rows only: the training split is never read whole.
        self._raw: dict[str, torch.Tensor] = {"bn": data.rows("train", idx)[0]}
        for split in SPLITS:
            x, y = data.tensors(split)
            self._raw[split] = x
            self._raw[f"{split}_y"] = y
        self._prepared: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}
        self.cache: dict[tuple[str, Genotype], dict[str, float]] = {}
        self._has_bn = has_batch_norm(supernet)
        self.scored = 0  # subnets actually scored (cache misses)

    def _inputs(self, split: str, arch: Mapping[str, int]) -> torch.Tensor:
        """``split``'s inputs shaped for ``arch``, in host memory (pinned for a GPU), prepared
        on the host: the supernet's ``prepare_input`` (a resize) needs no weights."""
        key = (split, tuple(self.space.input_shape(arch)) if self._has_shape() else ())
        if key not in self._prepared:
            x = self._raw[split]
            parts = [self.net.prepare_input(x[i : i + 1000]) for i in range(0, len(x), 1000)]
            prepared = torch.cat(parts) if parts else x
            if self.device.type == "cuda" and prepared.numel():
                prepared = prepared.pin_memory()
            self._prepared[key] = prepared
        return self._prepared[key]

    def _labels(self, split: str) -> torch.Tensor:
        key = (f"{split}_y", ())
        if key not in self._prepared:
            self._prepared[key] = self._raw[f"{split}_y"].to(self.device)
        return self._prepared[key]

    def _has_shape(self) -> bool:
        try:
            self.space.input_shape(self.space.max_arch())
        except NotImplementedError:
            return False
        return True

    @torch.no_grad()
    def _score(self, arch: Mapping[str, int], split: str) -> dict[str, float]:
        dev = self.device
        self.net.set_active(arch)
        if self._has_bn:
            bn_x = self._inputs("bn", arch)
            recalibrate_bn(self.net, calibration_batches(bn_x, self.bn_batch), device=dev)
        self.net.eval()  # a network without batch norm is scored as it is
        x = self._inputs(split, arch)
        y = self._labels(split)
        # Device sums, read once below: no host sync per batch.
        correct = torch.zeros((), dtype=torch.long, device=dev)
        loss = torch.zeros((), dtype=torch.float64, device=dev)
        for i in range(0, len(x), self.batch_size):
            logits = self.net(to_device(x[i : i + self.batch_size], dev))
            yy = y[i : i + self.batch_size]
            correct += (logits.argmax(1) == yy).sum()
            loss += F.cross_entropy(logits, yy, reduction="sum").double()
        n = max(1, len(x))
        return {"accuracy": int(correct.item()) / n, "loss": float(loss.item()) / n}

    def evaluate(
        self, archs: Sequence[Mapping[str, int]], *, split: str = "val"
    ) -> list[dict[str, float]]:
        """``[{"accuracy", "loss"}, ...]`` per arch, in order (cached per genotype and split)."""
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not allowed; use one of {SPLITS}")
        genes = [self.space.encode(a) for a in archs]
        todo = [g for g in dict.fromkeys(genes) if (split, g) not in self.cache]
        if todo:
            saved_bn = _bn_state(self.net)
            saved_active = dict(self.net.active)
            was_training = self.net.training
            home = _device_of(self.net)
            self.net.to(self.device)  # nothing moves when it is there already (the CPU)
            try:
                for g in todo:
                    self.cache[(split, g)] = self._score(self.space.decode(g), split)
                    self.scored += 1
            finally:
                # Back where it was: a worker's cached supernet is shared with the export
                # and the latency units, which expect it where they left it.
                self.net.to(home)
                _restore_bn(self.net, saved_bn)
                self.net.set_active(saved_active)
                self.net.train(was_training)
        return [dict(self.cache[(split, g)]) for g in genes]

    def stats(self) -> dict[str, Any]:
        return {"cached": len(self.cache), "scored": self.scored}
