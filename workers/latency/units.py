"""How a network of a space splits into timeable units (the rows of the lookup table).

Each unit has a key (op type, input and output shape, kernel, expand width, stride, skip,
squeeze-excite) and builds a fresh module with exactly that configuration. The parts every arch
shares at a given input size (stem, head) are units too, keyed by their shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial

from torch import nn

from search_spaces.base import SearchSpace
from search_spaces.mbv3 import BlockCfg, MBV3Space
from search_spaces.mlp import MLPSpace


@dataclass(frozen=True)
class Unit:
    key: str
    input_shape: tuple[int, ...]
    build: Callable[[], nn.Module]


def _block_key(c: BlockCfg) -> str:
    size_out = c.size_out
    return (
        f"inverted|in={c.cin}x{c.size_in}x{c.size_in}|out={c.cout}x{size_out}x{size_out}"
        f"|k={c.kernel}|mid={c.mid}|s={c.stride}|skip={int(c.residual)}|se={c.se_reduce}"
        f"|act={c.act}|expand={int(c.expand)}"
    )


def _mbv3_units(space: MBV3Space, arch: Mapping[str, int]) -> list[Unit]:
    from search_spaces.nn.mbv3_static import InvertedBlock, make_head, make_mix, make_stem

    a = space.canonical(arch)
    res = a["resolution"]
    blocks = space.blocks(a)
    units = [
        Unit(
            f"stem|in={space.in_channels}x{res}x{res}|out={space.stem_width}",
            (space.in_channels, res, res),
            lambda: make_stem(space),
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


def _linear_bn_relu(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Linear(cin, cout, bias=False), nn.BatchNorm1d(cout), nn.ReLU())


def _mlp_units(space: MLPSpace, arch: Mapping[str, int]) -> list[Unit]:
    units = []
    prev = space.in_features
    for w in space.layer_widths(arch):
        units.append(
            Unit(
                f"linear_bn_relu|in={prev}|out={w}",
                (prev,),
                partial(_linear_bn_relu, prev, w),
            )
        )
        prev = w
    units.append(
        Unit(
            f"classifier|in={prev}|out={space.num_classes}",
            (prev,),
            partial(nn.Linear, prev, space.num_classes),
        )
    )
    return units


def units_of(space: SearchSpace, arch: Mapping[str, int]) -> list[Unit]:
    if isinstance(space, MBV3Space):
        return _mbv3_units(space, arch)
    if isinstance(space, MLPSpace):
        return _mlp_units(space, arch)
    raise ValueError(f"no latency lookup table layout for space '{space.id}'")


def covering_archs(space: SearchSpace) -> Iterator[dict[str, int]]:
    """Archs that together contain every distinct unit of the space.

    Every block position takes every (kernel, expand) pair at every resolution (mbv3); every
    pair of consecutive widths appears (mlp).
    """
    big = space.max_arch()
    if isinstance(space, MBV3Space):
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
    elif isinstance(space, MLPSpace):
        for w1 in space.widths:
            for w2 in space.widths:
                a = dict(big, depth=max(space.depths))
                for j in range(1, space.max_depth + 1):
                    a[f"l{j}.width"] = w1 if j % 2 else w2
                yield space.canonical(a)
                if min(space.depths) == 1:
                    yield space.canonical(dict(big, depth=1, **{"l1.width": w1}))
    else:
        raise ValueError(f"no latency lookup table layout for space '{space.id}'")
