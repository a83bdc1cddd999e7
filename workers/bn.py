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

from workers.devices import resolve_device, to_device

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
def recalibrate_bn(
    module: nn.Module,
    batches: Iterable[torch.Tensor],
    device: str | torch.device | None = None,
) -> int:
    """Re-estimate every BN layer's running stats of ``module`` on ``batches`` (inputs only,
    already shaped for the module). Returns the number of images used. Leaves ``module`` in
    eval mode. A module without batch norm has nothing to re-estimate: ``batches`` is not
    consumed and 0 is returned.

    ``device`` (``workers.devices.resolve_device``; the module must already be there): each
    batch is moved to it before its forward (non-blocking from pinned memory on CUDA); None
    uses the batches where they are. The cumulative average is the one BN's ``momentum=None``
    computes, its per-call factor ``1/k`` counted on the host: BN's own rule reads its call
    count back from the device at every call of every layer (a host sync per layer and batch
    on a GPU). The factors are the same Python floats, so the statistics are bit-identical."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        module.eval()
        return 0
    target = None if device is None else resolve_device(device)
    saved = [(m, m.momentum) for m in bns]
    calls: dict[nn.Module, int] = dict.fromkeys(bns, 0)

    def cumulative(m: nn.Module, _args: object) -> None:
        # The k-th call of a layer (counted since its reset) weighs its batch by 1/k: the
        # running mean of all its batch statistics, as momentum=None gives.
        assert isinstance(m, nn.modules.batchnorm._BatchNorm)
        calls[m] += 1
        m.momentum = 1.0 / calls[m]

    hooks = []
    for m in bns:
        m.reset_running_stats()
        hooks.append(m.register_forward_pre_hook(cumulative))
    was_training = module.training
    module.train()
    seen = 0
    try:
        for x in batches:
            module(x if target is None else to_device(x, target))
            seen += int(x.shape[0])
    finally:
        for h in hooks:
            h.remove()
        for m, mom in saved:
            m.momentum = mom
        module.train(was_training)
    module.eval()
    return seen
