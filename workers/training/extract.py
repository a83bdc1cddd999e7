"""Extract a subnet for scoring or export, with BN statistics re-estimated for it first."""

from __future__ import annotations

import torch
from torch import nn

from search_spaces import Arch
from search_spaces.nn import Supernet
from workers.bn import BN_BATCH, BN_IMAGES, calibration_batches, calibration_indices, recalibrate_bn
from workers.data import DatasetSplits


def bn_calibration_images(data: DatasetSplits, images: int, seed: int) -> torch.Tensor:
    """The BN calibration subset of the TRAIN split (``workers.bn.calibration_indices``): the
    same images the training loop, ``SubnetEvaluator`` and the export use for this seed."""
    idx = calibration_indices(data.sizes()["train"], images, seed)
    return data.rows("train", idx)[0]  # those rows only: never the whole split


def recalibrated_extract(
    net: Supernet,
    arch: Arch,
    data: DatasetSplits,
    *,
    seed: int = 0,
    images: int = BN_IMAGES,
    batch: int = BN_BATCH,
) -> nn.Module:
    """BN-recalibrate ``arch`` inside ``net`` on training images, then extract it (eval mode)."""
    net.set_active(arch)
    bn_x = bn_calibration_images(data, images, seed)
    recalibrate_bn(net, (net.prepare_input(b) for b in calibration_batches(bn_x, batch)))
    sub = net.extract(arch)
    sub.eval()
    return sub
