"""SGD (Nesterov) without weight decay on BN and bias; cosine schedule with linear warm-up."""

from __future__ import annotations

import math

import torch
from torch import nn

from workers.training.config import TrainConfig


def make_optimizer(net: nn.Module, lr: float, config: TrainConfig) -> torch.optim.SGD:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in net.parameters():
        if not p.requires_grad:
            continue
        # 1-D parameters are BN scales/shifts and biases: decaying them only hurts.
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.SGD(groups, lr=lr, momentum=config.momentum, nesterov=config.nesterov)


def step_lr(base: float, step: int, total: int, config: TrainConfig) -> float:
    """Learning rate of ``step`` (0-based) of a phase of ``total`` steps."""
    warm = int(config.warmup_fraction * total)
    if warm and step < warm:
        return base * (step + 1) / warm
    span = max(total - warm, 1)
    t = min(max(step - warm, 0) / span, 1.0)
    floor = base * config.min_lr_ratio
    return floor + 0.5 * (base - floor) * (1.0 + math.cos(math.pi * t))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr
