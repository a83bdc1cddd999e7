"""The supernet base class, the latency unit and the MAC counter shared by every space."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from search_spaces.base import Arch, SearchSpace


class Supernet(nn.Module):
    """A weight-sharing network with one active architecture at a time.

    Subclasses build their layers from ``space`` and implement ``_apply_arch`` (store the
    per-layer active sizes as plain ints so ``forward`` does no Python work per arch),
    ``extract`` and ``reorder_channels``.
    """

    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space
        self.active: Arch = space.max_arch()

    def set_active(self, arch: Mapping[str, int]) -> None:
        """Activate ``arch`` (validated; raises InvalidArch naming the bad dimension)."""
        canon = self.space.canonical(arch)
        self._apply_arch(canon)
        self.active = canon

    def _apply_arch(self, arch: Arch) -> None:
        raise NotImplementedError

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Bring a batch to the shape the active arch consumes (identity by default)."""
        return x

    def extract(self, arch: Mapping[str, int]) -> nn.Module:
        """A static module of plain torch layers with copied weights, equal in eval mode."""
        raise NotImplementedError

    def reorder_channels(self) -> None:
        """Sort elastic channels by importance once; the function of every layer is kept."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        return self.space.spec()


@dataclass(frozen=True)
class Unit:
    """One timeable piece of a network (a row of a latency lookup table).

    ``key`` names exactly the configuration (op type, input and output shape, kernel, width,
    stride, ...), so two archs that share a piece share its row; ``build`` makes a fresh module
    of that configuration, timed on an input of ``input_shape`` (without batch).
    """

    key: str
    input_shape: tuple[int, ...]
    build: Callable[[], nn.Module]


def count_macs(module: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates for ONE input of ``input_shape`` (without batch), counted from a
    real forward pass with hooks: every ``nn.Conv2d`` and ``nn.Linear``, plus every module that
    defines ``macs(inputs, output) -> int`` (the MACs of that call, e.g. a matrix product of
    two activations such as attention's ``q @ k^T``; the pass runs a batch of one).

    A ``Supernet`` is counted through the static subnet of its active arch, because its elastic
    layers call the functional ops directly.
    """
    if isinstance(module, Supernet):
        module = module.extract(module.active)
    total = 0

    def hook(m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            per_out = (m.in_channels // m.groups) * kh * kw
            total += int(out[0].numel()) * per_out
        elif isinstance(m, nn.Linear):
            total += int(out[0].numel()) * m.in_features
        else:
            total += int(m.macs(inputs, out))  # type: ignore[operator]

    handles = [
        m.register_forward_hook(hook)
        for m in module.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) or callable(getattr(m, "macs", None))
    ]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    return total
