"""Extract a subnet for scoring or export, with BN statistics re-estimated for it first."""

from __future__ import annotations

import torch
from torch import nn

from search_spaces import Arch
from search_spaces.nn import Supernet
from workers.bn import recalibrate_bn
from workers.data import DatasetSplits
from workers.training.loop import derive_seed
from workers.training.steps import bn_batches


def bn_calibration_images(data: DatasetSplits, images: int, seed: int) -> torch.Tensor:
    """The fixed, seeded subset of the TRAIN split used for BN recalibration (the same subset
    the training loop uses for its evaluations with the same seed)."""
    x, _ = data.tensors("train")
    g = torch.Generator().manual_seed(derive_seed(seed, 7))
    return x[torch.randperm(len(x), generator=g)[:images]]


def recalibrated_extract(
    net: Supernet,
    arch: Arch,
    data: DatasetSplits,
    *,
    seed: int = 0,
    images: int = 2000,
    batch: int = 200,
) -> nn.Module:
    """BN-recalibrate ``arch`` inside ``net`` on training images, then extract it (eval mode)."""
    net.set_active(arch)
    bn_x = bn_calibration_images(data, images, seed)
    recalibrate_bn(net, (net.prepare_input(b) for b in bn_batches(bn_x, batch)))
    sub = net.extract(arch)
    sub.eval()
    return sub
