"""The Once-for-All MobileNetV3 space. Torch-free: dimensions, block layout, analytic counts.

Layout (channels scaled by ``width_mult`` and rounded with ``make_divisible``): stem conv 3x3
(stride 2, or 1 for ``small_input``) + BN + h-swish; a fixed first block (depthwise 3x3 + BN +
ReLU, pointwise + BN, identity residual); five elastic stages of up to four inverted-bottleneck
blocks (widths 24, 40, 80, 112, 160; squeeze-excite in the 40, 112 and 160 stages); head conv
1x1 to 960 + BN + h-swish, global pool, conv 1x1 to 1280 (no bias, no BN) + h-swish, dropout,
linear classifier. ``blocks(arch)`` is the single description that the analytic counts, the
supernet and the static builder all follow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from search_spaces.base import Dim, SearchSpace
from search_spaces.fitting import DataShape
from search_spaces.mlp import check_dropout, check_int, check_int_choices
from search_spaces.registry import register_space

BASE_WIDTHS = (24, 40, 80, 112, 160)
STRIDES = (2, 2, 2, 1, 2)
SMALL_STRIDES = (1, 2, 2, 1, 2)  # with a stride-1 stem: 8x down in all, so 8x8 inputs work
ACTS = ("relu", "relu", "hswish", "hswish", "hswish")
HAS_SE = (False, True, False, True, True)
MAX_BLOCKS = 4


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round to a multiple of ``divisor`` (at least ``divisor``), never more than 10% down."""
    out = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if out < 0.9 * v:
        out += divisor
    return out


@dataclass(frozen=True)
class BlockCfg:
    """One block of a concrete subnet. ``mid`` == ``cin`` and ``expand`` False for the fixed
    first block; ``se_reduce`` is 0 without squeeze-excite; ``size_in`` is the input side."""

    cin: int
    mid: int
    cout: int
    kernel: int
    stride: int
    act: str
    se_reduce: int
    residual: bool
    expand: bool
    size_in: int

    @property
    def size_out(self) -> int:
        return (self.size_in - 1) // self.stride + 1


class MBV3Space(SearchSpace):
    id = "mbv3"

    def __init__(
        self,
        width_mult: float = 1.0,
        num_classes: int = 1000,
        in_channels: int = 3,
        small_input: bool = False,
        resolutions: Sequence[int] | None = None,
        dropout: float = 0.1,
        kernels: Sequence[int] = (3, 5, 7),
        expands: Sequence[int] = (3, 4, 6),
        depths: Sequence[int] = (2, 3, 4),
    ):
        sid = self.id
        if (
            isinstance(width_mult, bool)
            or not isinstance(width_mult, (int, float))
            or not (0 < width_mult <= 4)
        ):
            raise ValueError(
                f"space '{sid}': option 'width_mult' must be a number in (0, 4], got {width_mult!r}"
            )
        if not isinstance(small_input, bool):
            raise ValueError(f"space '{sid}': option 'small_input' must be true or false")
        self.width_mult = float(width_mult)
        self.num_classes = check_int(sid, "num_classes", num_classes, 2)
        self.in_channels = check_int(sid, "in_channels", in_channels, 1)
        self.small_input = small_input
        if resolutions is None:
            resolutions = (24, 28, 32) if small_input else tuple(range(128, 225, 4))
        self.resolutions = check_int_choices(sid, "resolutions", resolutions, 8)
        self.dropout = check_dropout(sid, dropout)
        self.kernels = check_int_choices(sid, "kernels", kernels, 1)
        if any(k % 2 == 0 for k in self.kernels):
            raise ValueError(f"space '{sid}': option 'kernels' must be odd, got {list(kernels)}")
        self.expands = check_int_choices(sid, "expands", expands, 1)
        self.depths = check_int_choices(sid, "depths", depths, 1)
        if max(self.depths) > MAX_BLOCKS:
            raise ValueError(
                f"space '{sid}': option 'depths' allows at most {MAX_BLOCKS} blocks per stage, "
                f"got {list(self.depths)}"
            )
        wm = self.width_mult
        self.stem_width = make_divisible(16 * wm)
        self.first_width = make_divisible(16 * wm)
        self.stage_widths = tuple(make_divisible(w * wm) for w in BASE_WIDTHS)
        self.head_width = make_divisible(960 * wm)
        self.last_width = make_divisible(1280 * wm)
        self.stem_stride = 1 if small_input else 2
        self.strides = SMALL_STRIDES if small_input else STRIDES
        self.max_blocks = max(self.depths)
        dims = [Dim("resolution", "resolution", self.resolutions)]
        for i in range(1, 6):
            dims.append(Dim(f"s{i}.depth", "depth", self.depths))
            for j in range(1, self.max_blocks + 1):
                dims.append(Dim(f"s{i}.b{j}.kernel", "kernel", self.kernels))
                dims.append(Dim(f"s{i}.b{j}.expand", "expand", self.expands))
        options = {
            "width_mult": self.width_mult,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "small_input": self.small_input,
            "resolutions": list(self.resolutions),
            "dropout": self.dropout,
            "kernels": list(self.kernels),
            "expands": list(self.expands),
            "depths": list(self.depths),
        }
        super().__init__(dims, options)

    # ----- layout ---------------------------------------------------------------------------
    def active_dims(self, arch: Mapping[str, int]) -> set[str]:
        names = {"resolution"}
        for i in range(1, 6):
            names.add(f"s{i}.depth")
            for j in range(1, arch[f"s{i}.depth"] + 1):
                names.add(f"s{i}.b{j}.kernel")
                names.add(f"s{i}.b{j}.expand")
        return names

    def mid_channels(self, cin: int, expand: int) -> int:
        return make_divisible(round(cin * expand))

    def stage_input(self, stage: int, block: int) -> int:
        """Input channels of block ``block`` (0-based) of stage ``stage`` (0-based)."""
        if block > 0:
            return self.stage_widths[stage]
        return self.first_width if stage == 0 else self.stage_widths[stage - 1]

    def block_cfg(self, stage: int, block: int, kernel: int, expand: int, size_in: int) -> BlockCfg:
        cin = self.stage_input(stage, block)
        cout = self.stage_widths[stage]
        mid = self.mid_channels(cin, expand)
        stride = self.strides[stage] if block == 0 else 1
        return BlockCfg(
            cin=cin,
            mid=mid,
            cout=cout,
            kernel=kernel,
            stride=stride,
            act=ACTS[stage],
            se_reduce=make_divisible(mid // 4) if HAS_SE[stage] else 0,
            residual=stride == 1 and cin == cout,
            expand=True,
            size_in=size_in,
        )

    def blocks(self, arch: Mapping[str, int]) -> list[BlockCfg]:
        """The fixed first block then every active block, in order, with spatial sizes."""
        a = self.canonical(arch)
        size = (a["resolution"] - 1) // self.stem_stride + 1
        c = self.first_width
        out = [
            BlockCfg(
                self.stem_width,
                self.stem_width,
                c,
                3,
                1,
                "relu",
                0,
                self.stem_width == c,
                False,
                size,
            )
        ]
        for i in range(5):
            for j in range(a[f"s{i + 1}.depth"]):
                cfg = self.block_cfg(
                    i, j, a[f"s{i + 1}.b{j + 1}.kernel"], a[f"s{i + 1}.b{j + 1}.expand"], size
                )
                size = cfg.size_out
                out.append(cfg)
        return out

    # ----- analytics ------------------------------------------------------------------------
    def flops(self, arch: Mapping[str, int]) -> int:
        res = self.canonical(arch)["resolution"]
        size = (res - 1) // self.stem_stride + 1
        total = size * size * self.stem_width * self.in_channels * 9
        for b in self.blocks(arch):
            s_in, s_out = b.size_in**2, b.size_out**2
            if b.expand:
                total += s_in * b.cin * b.mid
            total += s_out * b.mid * b.kernel * b.kernel
            total += 2 * b.mid * b.se_reduce
            total += s_out * b.mid * b.cout
            size = b.size_out
        total += size * size * self.stage_widths[-1] * self.head_width
        total += self.head_width * self.last_width + self.last_width * self.num_classes
        return total

    def params(self, arch: Mapping[str, int]) -> int:
        total = 9 * self.in_channels * self.stem_width + 2 * self.stem_width
        for b in self.blocks(arch):
            if b.expand:
                total += b.cin * b.mid + 2 * b.mid
            total += b.mid * b.kernel * b.kernel + 2 * b.mid
            if b.se_reduce:
                total += 2 * b.mid * b.se_reduce + b.mid + b.se_reduce
            total += b.mid * b.cout + 2 * b.cout
        total += self.stage_widths[-1] * self.head_width + 2 * self.head_width
        total += self.head_width * self.last_width
        return total + self.last_width * self.num_classes + self.num_classes

    def input_shape(self, arch: Mapping[str, int]) -> tuple[int, ...]:
        r = self.canonical(arch)["resolution"]
        return (self.in_channels, r, r)

    def short(self, arch: Mapping[str, int]) -> str:
        a = self.canonical(arch)
        depths = [a[f"s{i}.depth"] for i in range(1, 6)]

        def per_block(kind: str) -> str:
            return ".".join(
                "".join(str(a[f"s{i}.b{j}.{kind}"]) for j in range(1, d + 1))
                for i, d in zip(range(1, 6), depths, strict=True)
            )

        return (
            f"r{a['resolution']}-d{''.join(map(str, depths))}"
            f"-k{per_block('kernel')}-e{per_block('expand')}"
        )

    def size(self) -> int:
        per_block = len(self.kernels) * len(self.expands)
        per_stage = sum(per_block**d for d in self.depths)
        return len(self.resolutions) * math.prod([per_stage] * 5)


# Below this side length the stem and the first stages must not downsample as much as they
# would on ImageNet-sized inputs, or an 8x8 digit is reduced to a single pixel at once.
SMALL_INPUT_SIDE = 64


def fit_mbv3(data: DataShape) -> dict[str, Any]:
    """Channels and classes from the data; small images get the stride-1 stem; resolutions
    are the native side (up to 16 px) or it and two smaller steps of 4 pixels."""
    c, h, w = data.input_shape
    side = min(h, w)
    if side <= 16:
        resolutions: tuple[int, ...] = (side,)
    else:
        resolutions = tuple(r for r in (side - 8, side - 4, side) if r >= 8)
    return {
        "in_channels": int(c),
        "num_classes": data.num_classes,
        "small_input": side < SMALL_INPUT_SIDE,
        "resolutions": resolutions,
    }


@register_space(
    "mbv3",
    "Once-for-All MobileNetV3: per-block kernel and expand, per-stage depth",
    modality="image",
    fit=fit_mbv3,
    data_bound=("in_channels", "num_classes"),
    nn="search_spaces.nn.mbv3",
)
def make_mbv3(**options: Any) -> MBV3Space:
    return MBV3Space(**options)
