"""Batch-norm recalibration for weight-sharing subnets.

Shared weights leave running statistics that fit no single subnet. Before a subnet is scored or
exported its BN statistics are reset and re-estimated as the *cumulative average* of batch
statistics over a fixed set of training batches (``momentum=None``), which is what makes
shared-weight subnets evaluate far above chance.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def recalibrate_bn(module: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Re-estimate every BN layer's running stats of ``module`` on ``batches`` (inputs only,
    already shaped for the module). Returns the number of images used. Leaves ``module`` in
    eval mode."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
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
