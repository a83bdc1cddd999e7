"""Batch-norm recalibration for weight-sharing subnets, and the one rule for its image subset.

Shared weights leave running statistics that fit no single subnet. Before a subnet is scored or
exported its BN statistics are reset and re-estimated as the *cumulative average* of batch
statistics over a fixed set of training batches (``momentum=None``), which is what makes
shared-weight subnets evaluate far above chance.

Which training images: ``calibration_indices`` is the single rule, used by the trainer's
per-epoch evaluation, ``SubnetEvaluator`` (search), ``recalibrated_extract`` and the pipeline's
export. The same seed gives the same subset everywhere, so a subnet scores the same in training
and in search. The subsets for different image counts are prefixes of one seeded permutation:
a smaller calibration set is contained in a larger one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import nn

# The paper's figure (Once-for-All): about 2,000 training images in batches of 200. A split
# smaller than that is used whole.
BN_IMAGES = 2000
BN_BATCH = 200
# Sub-stream of the run seed for the subset, so it never coincides with the data order or the
# sampler streams derived from the same seed (7 is what the trainer always used).
_SUBSET_STREAM = 7


def calibration_seed(seed: int) -> int:
    """The torch generator seed of the calibration subset for a run / job ``seed``."""
    return int(np.random.SeedSequence([int(seed), _SUBSET_STREAM]).generate_state(1)[0])


def calibration_indices(n_train: int, images: int = BN_IMAGES, seed: int = 0) -> torch.Tensor:
    """Indices into the training split of the BN calibration images: the first
    ``min(images, n_train)`` of a permutation seeded by ``calibration_seed(seed)``."""
    if images < 1:
        raise ValueError(f"BN calibration needs at least one image, got images={images}")
    g = torch.Generator().manual_seed(calibration_seed(seed))
    return torch.randperm(n_train, generator=g)[: min(images, n_train)]


def calibration_images(
    x_train: torch.Tensor, images: int = BN_IMAGES, seed: int = 0
) -> torch.Tensor:
    """The calibration subset of ``x_train`` (the training split's inputs) by that rule. A
    dataset on disk is not read whole for it: take ``data.rows("train", calibration_indices(
    ...))`` (``workers.training.extract.bn_calibration_images``)."""
    return x_train[calibration_indices(len(x_train), images, seed)]


def calibration_batches(x: torch.Tensor, batch: int = BN_BATCH) -> Iterator[torch.Tensor]:
    """Consecutive batches of ``batch`` images. With ``momentum=None`` every batch counts
    equally in the average, so the batching is part of the rule."""
    if batch < 1:
        raise ValueError(f"BN calibration batch must be >= 1, got {batch}")
    for i in range(0, len(x), batch):
        yield x[i : i + batch]


def has_batch_norm(module: nn.Module) -> bool:
    """Whether ``module`` holds a batch-norm layer (a network without one, e.g. LayerNorm
    only, needs no recalibration)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


@torch.no_grad()
def recalibrate_bn(module: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Re-estimate every BN layer's running stats of ``module`` on ``batches`` (inputs only,
    already shaped for the module). Returns the number of images used. Leaves ``module`` in
    eval mode. A module without batch norm has nothing to re-estimate: ``batches`` is not
    consumed and 0 is returned."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        module.eval()
        return 0
    saved = [(m, m.momentum) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = mean of batch statistics
    was_training = module.training
    module.train()
    seen = 0
    try:
        for x in batches:
            module(x)
            seen += int(x.shape[0])
    finally:
        for m, mom in saved:
            m.momentum = mom
        module.train(was_training)
    module.eval()
    return seen
