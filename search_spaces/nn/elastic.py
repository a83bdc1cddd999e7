"""Elastic layers: each holds the largest weights and computes with a prefix slice of them.

Active sizes are plain ints set by the supernet's ``set_active``; a layer whose active size is
its full size uses its parameters directly (no slice, so no scatter in the backward pass).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.mbv3 import make_divisible


def _sliced_batch_norm(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """Batch norm over the first ``x.shape[1]`` channels of ``bn``.

    Mirrors ``_BatchNorm.forward`` (including ``momentum=None``, the cumulative average that BN
    recalibration relies on); the running-stat slices are views, so updates land in the
    buffers of the full layer.
    """
    c = x.shape[1]
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    use_batch = bn.training or bn.running_mean is None
    rm = bn.running_mean[:c] if bn.running_mean is not None else None
    rv = bn.running_var[:c] if bn.running_var is not None else None
    keep_stats = not bn.training or bn.track_running_stats
    return F.batch_norm(
        x,
        rm if keep_stats else None,
        rv if keep_stats else None,
        bn.weight[:c] if bn.weight is not None else None,
        bn.bias[:c] if bn.bias is not None else None,
        use_batch,
        factor,
        bn.eps,
    )


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d over a prefix of its channels (a BN subclass, so generic BN code sees it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == self.num_features:
            return super().forward(x)
        return _sliced_batch_norm(self, x)


class ElasticBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d over a prefix of its features."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == self.num_features:
            return super().forward(x)
        return _sliced_batch_norm(self, x)


class ElasticLinear(nn.Module):
    """Linear layer; ``forward(x, out)`` uses the first ``out`` outputs and x's width of inputs."""

    def __init__(self, in_max: int, out_max: int, bias: bool):
        super().__init__()
        self.in_max = in_max
        self.out_max = out_max
        self.weight = nn.Parameter(torch.empty(out_max, in_max))
        self.bias = nn.Parameter(torch.zeros(out_max)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(in_max)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, out: int) -> torch.Tensor:
        cin = x.shape[1]
        w: torch.Tensor = self.weight
        if out != self.out_max or cin != self.in_max:
            w = w[:out, :cin]
        b: torch.Tensor | None = self.bias
        if b is not None and out != self.out_max:
            b = b[:out]
        return F.linear(x, w, b)


class ElasticPointwise(nn.Module):
    """1x1 convolution without bias; ``forward(x, out)`` slices outputs and inputs."""

    def __init__(self, in_max: int, out_max: int):
        super().__init__()
        self.in_max = in_max
        self.out_max = out_max
        self.weight = nn.Parameter(torch.empty(out_max, in_max, 1, 1))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")

    def forward(self, x: torch.Tensor, out: int) -> torch.Tensor:
        cin = x.shape[1]
        w: torch.Tensor = self.weight
        if out != self.out_max or cin != self.in_max:
            w = w[:out, :cin]
        return F.conv2d(x, w)


class ElasticDepthwise(nn.Module):
    """Depthwise kxk convolution storing the largest kernel.

    A smaller kernel is the centre crop of the next larger (already transformed) kernel passed
    through a learned (k*k, k*k) matrix shared by all channels, initialised to identity: the
    Once-for-All kernel transform. One small matmul per step of the chain.
    """

    def __init__(self, channels: int, kernels: tuple[int, ...], stride: int):
        super().__init__()
        self.channels = channels
        self.kernels = tuple(sorted(kernels, reverse=True))
        self.kmax = self.kernels[0]
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(channels, 1, self.kmax, self.kmax))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        self.transforms = nn.ParameterDict(
            {f"k{k}": nn.Parameter(torch.eye(k * k)) for k in self.kernels[1:]}
        )
        self.kernel = self.kmax

    def kernel_weight(self, channels: int, kernel: int) -> torch.Tensor:
        """The (channels, 1, kernel, kernel) weight the layer uses for that configuration."""
        w: torch.Tensor = self.weight if channels == self.channels else self.weight[:channels]
        size = self.kmax
        for k in self.kernels[1:]:
            if k < kernel:
                break
            start = (size - k) // 2
            crop = w[:, :, start : start + k, start : start + k].reshape(channels, k * k)
            w = F.linear(crop, self.transforms[f"k{k}"]).reshape(channels, 1, k, k)
            size = k
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        k = self.kernel
        return F.conv2d(x, self.kernel_weight(c, k), None, self.stride, k // 2, 1, c)


class ElasticSqueezeExcite(nn.Module):
    """Squeeze-excite whose reduced width follows the active channels:
    reduce = make_divisible(channels // 4)."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.reduce_max = make_divisible(channels // 4)
        self.reduce_weight = nn.Parameter(torch.empty(self.reduce_max, channels, 1, 1))
        self.reduce_bias = nn.Parameter(torch.zeros(self.reduce_max))
        self.expand_weight = nn.Parameter(torch.empty(channels, self.reduce_max, 1, 1))
        self.expand_bias = nn.Parameter(torch.zeros(channels))
        nn.init.kaiming_normal_(self.reduce_weight, mode="fan_out")
        nn.init.kaiming_normal_(self.expand_weight, mode="fan_out")

    def sliced(self, c: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reduce weight, reduce bias, expand weight, expand bias) for ``c`` active channels."""
        if c == self.channels:
            return self.reduce_weight, self.reduce_bias, self.expand_weight, self.expand_bias
        r = make_divisible(c // 4)
        return (
            self.reduce_weight[:r, :c],
            self.reduce_bias[:r],
            self.expand_weight[:c, :r],
            self.expand_bias[:c],
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rw, rb, ew, eb = self.sliced(x.shape[1])
        s = x.mean((2, 3), keepdim=True)
        s = F.relu(F.conv2d(s, rw, rb))
        s = F.hardsigmoid(F.conv2d(s, ew, eb))
        return x * s
