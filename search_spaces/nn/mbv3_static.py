"""Static MobileNetV3 subnets built from plain torch layers.

``build_static_mbv3(space, arch)`` needs only the space spec and the arch JSON, so exported
weights load without the supernet; ``MBV3Supernet.extract`` fills the same tree.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial

import torch
from torch import nn

from search_spaces.mbv3 import BlockCfg, MBV3Space
from search_spaces.nn.base import Unit


def activation(name: str) -> nn.Module:
    return nn.Hardswish() if name == "hswish" else nn.ReLU()


class SqueezeExcite(nn.Module):
    """Global average, 1x1 conv to ``reduce`` + ReLU, 1x1 conv back + h-sigmoid, rescale."""

    def __init__(self, channels: int, reduce: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduce, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(reduce, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        out: torch.Tensor = x * self.gate(self.expand(self.act(self.reduce(s))))
        return out


class InvertedBlock(nn.Module):
    """Inverted bottleneck: [1x1 expand + BN + act], depthwise kxk + BN + act, [SE],
    1x1 projection + BN, identity residual when shapes allow. Missing parts are nn.Identity
    (no parameters), so the state_dict holds exactly the block's weights."""

    def __init__(self, cfg: BlockCfg):
        super().__init__()
        self.expand: nn.Module = nn.Identity()
        if cfg.expand:
            self.expand = nn.Sequential(
                nn.Conv2d(cfg.cin, cfg.mid, 1, bias=False),
                nn.BatchNorm2d(cfg.mid),
                activation(cfg.act),
            )
        k = cfg.kernel
        self.depthwise = nn.Sequential(
            nn.Conv2d(cfg.mid, cfg.mid, k, cfg.stride, k // 2, groups=cfg.mid, bias=False),
            nn.BatchNorm2d(cfg.mid),
            activation(cfg.act),
        )
        self.se: nn.Module = (
            SqueezeExcite(cfg.mid, cfg.se_reduce) if cfg.se_reduce else (nn.Identity())
        )
        self.project = nn.Sequential(
            nn.Conv2d(cfg.mid, cfg.cout, 1, bias=False), nn.BatchNorm2d(cfg.cout)
        )
        self.residual = cfg.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.project(self.se(self.depthwise(self.expand(x))))
        return x + out if self.residual else out


def make_stem(space: MBV3Space) -> nn.Sequential:
    c = space.stem_width
    return nn.Sequential(
        nn.Conv2d(space.in_channels, c, 3, space.stem_stride, 1, bias=False),
        nn.BatchNorm2d(c),
        nn.Hardswish(),
    )


def make_head(space: MBV3Space) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(space.stage_widths[-1], space.head_width, 1, bias=False),
        nn.BatchNorm2d(space.head_width),
        nn.Hardswish(),
    )


def make_mix(space: MBV3Space) -> nn.Sequential:
    # Applied after global pooling: no BN here, and no bias, as in the published network.
    return nn.Sequential(
        nn.Conv2d(space.head_width, space.last_width, 1, bias=False), nn.Hardswish()
    )


class StaticMBV3(nn.Module):
    def __init__(self, space: MBV3Space, arch: Mapping[str, int]):
        super().__init__()
        self.stem = make_stem(space)
        self.blocks = nn.Sequential(*[InvertedBlock(cfg) for cfg in space.blocks(arch)])
        self.head = make_head(space)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.mix = make_mix(space)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(space.dropout),
            nn.Linear(space.last_width, space.num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        out: torch.Tensor = self.classifier(self.mix(self.pool(x)))
        return out


def build_static_mbv3(space: MBV3Space, arch: Mapping[str, int]) -> StaticMBV3:
    return StaticMBV3(space, space.canonical(arch))


# ----- latency lookup-table units ------------------------------------------------------------
def _block_key(c: BlockCfg) -> str:
    size_out = c.size_out
    return (
        f"inverted|in={c.cin}x{c.size_in}x{c.size_in}|out={c.cout}x{size_out}x{size_out}"
        f"|k={c.kernel}|mid={c.mid}|s={c.stride}|skip={int(c.residual)}|se={c.se_reduce}"
        f"|act={c.act}|expand={int(c.expand)}"
    )


def latency_units(space: MBV3Space, arch: Mapping[str, int]) -> list[Unit]:
    """The stem, one unit per inverted block (kernel, expand width, stride, skip, SE) and the
    tail (head, pool, mix, classifier), each keyed by its shapes."""
    a = space.canonical(arch)
    res = a["resolution"]
    blocks = space.blocks(a)
    units = [
        Unit(
            f"stem|in={space.in_channels}x{res}x{res}|out={space.stem_width}",
            (space.in_channels, res, res),
            partial(make_stem, space),
        )
    ]
    for c in blocks:
        units.append(Unit(_block_key(c), (c.cin, c.size_in, c.size_in), partial(InvertedBlock, c)))
    last = blocks[-1].size_out
    cin = space.stage_widths[-1]

    def tail() -> nn.Module:
        return nn.Sequential(
            make_head(space),
            nn.AdaptiveAvgPool2d(1),
            make_mix(space),
            nn.Flatten(),
            nn.Linear(space.last_width, space.num_classes),
        )

    units.append(
        Unit(f"tail|in={cin}x{last}x{last}|out={space.num_classes}", (cin, last, last), tail)
    )
    return units


def covering_archs(space: MBV3Space) -> Iterator[dict[str, int]]:
    """Every block position takes every (kernel, expand) pair at every resolution."""
    big = space.max_arch()
    for res in space.resolutions:
        for k in space.kernels:
            for e in space.expands:
                a = dict(big, resolution=res)
                for d in space.dims:
                    if d.kind == "kernel":
                        a[d.name] = k
                    elif d.kind == "expand":
                        a[d.name] = e
                yield space.canonical(a)
