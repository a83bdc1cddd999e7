"""The Once-for-All MobileNetV3 supernet."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.base import Arch
from search_spaces.mbv3 import ACTS, HAS_SE, MBV3Space
from search_spaces.nn.base import Supernet
from search_spaces.nn.elastic import (
    ElasticBatchNorm2d,
    ElasticDepthwise,
    ElasticPointwise,
    ElasticSqueezeExcite,
)
from search_spaces.nn.mbv3_static import (
    InvertedBlock,
    SqueezeExcite,
    StaticMBV3,
    build_static_mbv3,
    make_head,
    make_mix,
    make_stem,
)
from search_spaces.nn.mbv3_static import covering_archs as mbv3_covering_archs
from search_spaces.nn.mbv3_static import latency_units as mbv3_latency_units
from search_spaces.nn.mlp import copy_bn

_ACT: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "hswish": F.hardswish,
}


class ElasticBlock(nn.Module):
    """Inverted bottleneck with elastic kernel and mid width; in/out widths are fixed."""

    def __init__(
        self,
        cin: int,
        cout: int,
        mid_max: int,
        kernels: tuple[int, ...],
        stride: int,
        act: str,
        se: bool,
    ):
        super().__init__()
        self.expand_conv = ElasticPointwise(cin, mid_max)
        self.expand_bn = ElasticBatchNorm2d(mid_max)
        self.depthwise = ElasticDepthwise(mid_max, kernels, stride)
        self.depthwise_bn = ElasticBatchNorm2d(mid_max)
        self.se = ElasticSqueezeExcite(mid_max) if se else None
        self.project = ElasticPointwise(mid_max, cout)
        self.project_bn = nn.BatchNorm2d(cout)
        self.act = _ACT[act]
        self.cout = cout
        self.mid_max = mid_max
        self.residual = stride == 1 and cin == cout
        self.mid = mid_max

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.expand_bn(self.expand_conv(x, self.mid)))
        h = self.act(self.depthwise_bn(self.depthwise(h)))
        if self.se is not None:
            h = self.se(h)
        h = self.project_bn(self.project(h, self.cout))
        return x + h if self.residual else h

    @torch.no_grad()
    def copy_into(self, block: InvertedBlock) -> None:
        """Fill a static block of the active configuration with (transformed) weights."""
        mid, k = self.mid, self.depthwise.kernel
        expand, dw, project = block.expand, block.depthwise, block.project
        assert isinstance(expand, nn.Sequential)
        _conv(expand[0]).weight.copy_(self.expand_conv.weight[:mid])
        copy_bn(expand[1], self.expand_bn)
        _conv(dw[0]).weight.copy_(self.depthwise.kernel_weight(mid, k))
        copy_bn(dw[1], self.depthwise_bn)
        if self.se is not None:
            rw, rb, ew, eb = self.se.sliced(mid)
            se = block.se
            assert isinstance(se, SqueezeExcite)
            assert se.reduce.bias is not None and se.expand.bias is not None
            for dst, src in (
                (se.reduce.weight, rw),
                (se.reduce.bias, rb),
                (se.expand.weight, ew),
                (se.expand.bias, eb),
            ):
                dst.copy_(src)
        _conv(project[0]).weight.copy_(self.project.weight[:, :mid])
        copy_bn(project[1], self.project_bn)

    @torch.no_grad()
    def reorder(self) -> None:
        """Sort mid channels by the L1 norm of their projection weights (most important first),
        and the SE reduce channels by the L1 norm of their expand weights."""
        perm = torch.argsort(self.project.weight.abs().sum((0, 2, 3)), descending=True)
        _permute(self.expand_conv.weight, perm, 0)
        _permute_bn(self.expand_bn, perm)
        _permute(self.depthwise.weight, perm, 0)
        _permute_bn(self.depthwise_bn, perm)
        _permute(self.project.weight, perm, 1)
        se = self.se
        if se is not None:
            _permute(se.reduce_weight, perm, 1)
            _permute(se.expand_weight, perm, 0)
            _permute(se.expand_bias, perm, 0)
            perm_r = torch.argsort(se.expand_weight.abs().sum((0, 2, 3)), descending=True)
            _permute(se.reduce_weight, perm_r, 0)
            _permute(se.reduce_bias, perm_r, 0)
            _permute(se.expand_weight, perm_r, 1)


def _conv(m: nn.Module) -> nn.Conv2d:
    assert isinstance(m, nn.Conv2d)
    return m


def _permute(t: torch.Tensor, perm: torch.Tensor, dim: int) -> None:
    t.copy_(t.index_select(dim, perm))


def _permute_bn(bn: nn.BatchNorm2d, perm: torch.Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        _permute(getattr(bn, name), perm, 0)


class MBV3Supernet(Supernet):
    space: MBV3Space

    def __init__(self, space: MBV3Space):
        super().__init__(space)
        self.stem = make_stem(space)
        self.first = InvertedBlock(space.blocks(space.max_arch())[0])
        kernels, emax = space.kernels, max(space.expands)
        self.stages = nn.ModuleList()
        for i in range(5):
            stage = nn.ModuleList()
            for j in range(space.max_blocks):
                cin, cout = space.stage_input(i, j), space.stage_widths[i]
                stride = space.strides[i] if j == 0 else 1
                mid_max = space.mid_channels(cin, emax)
                stage.append(ElasticBlock(cin, cout, mid_max, kernels, stride, ACTS[i], HAS_SE[i]))
            self.stages.append(stage)
        self.head = make_head(space)
        self.mix = make_mix(space)
        self.classifier = nn.Linear(space.last_width, space.num_classes)
        self._blocks: list[ElasticBlock] = []
        self._resolution = 0
        self.set_active(space.max_arch())

    def _apply_arch(self, arch: Arch) -> None:
        active: list[ElasticBlock] = []
        for i, stage in enumerate(self.stages):
            assert isinstance(stage, nn.ModuleList)
            for j in range(arch[f"s{i + 1}.depth"]):
                block = stage[j]
                assert isinstance(block, ElasticBlock)
                cin = self.space.stage_input(i, j)
                block.mid = self.space.mid_channels(cin, arch[f"s{i + 1}.b{j + 1}.expand"])
                block.depthwise.kernel = arch[f"s{i + 1}.b{j + 1}.kernel"]
                active.append(block)
        self._blocks = active
        self._resolution = arch["resolution"]

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Resize a (N, C, H, W) batch to the active resolution (bilinear); identity if equal."""
        r = self._resolution
        if x.dim() != 4 or x.shape[1] != self.space.in_channels:
            raise ValueError(
                f"mbv3 supernet expects input of shape (N, {self.space.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        if x.shape[2] == r and x.shape[3] == r:
            return x
        return F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(self.stem(x))
        for block in self._blocks:
            x = block(x)
        x = self.head(x)
        x = self.mix(F.adaptive_avg_pool2d(x, 1)).flatten(1)
        x = F.dropout(x, self.space.dropout, self.training)
        out: torch.Tensor = self.classifier(x)
        return out

    @torch.no_grad()
    def extract(self, arch: Mapping[str, int]) -> StaticMBV3:
        canon = self.space.canonical(arch)
        previous = self.active
        self._apply_arch(canon)
        try:
            static = build_static_mbv3(self.space, canon)
            static.stem.load_state_dict(self.stem.state_dict())
            static.blocks[0].load_state_dict(self.first.state_dict())
            for block, dst in zip(self._blocks, list(static.blocks)[1:], strict=True):
                assert isinstance(dst, InvertedBlock)
                block.copy_into(dst)
            static.head.load_state_dict(self.head.state_dict())
            static.mix.load_state_dict(self.mix.state_dict())
            static.classifier[-1].load_state_dict(self.classifier.state_dict())
        finally:
            self._apply_arch(previous)
        static.train(self.training)
        return static

    def reorder_channels(self) -> None:
        for block in self.modules():
            if isinstance(block, ElasticBlock):
                block.reorder()


# ----- the registry's hooks (``register_space(..., nn="search_spaces.nn.mbv3")``) ------------
def build_supernet(space: MBV3Space) -> MBV3Supernet:
    return MBV3Supernet(space)


build_static = build_static_mbv3
latency_units = mbv3_latency_units
covering_archs = mbv3_covering_archs
