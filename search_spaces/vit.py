"""A weight-entangled vision-transformer space (AutoFormer / ElasticViT style). Torch-free.

Network (pre-norm ViT): an optional convolutional stem (conv 3x3, ``stem_channels`` outputs,
stride ``stem_stride``, bias, GELU; the hybrid of ElasticViT), a patch embedding (conv
``patch_size`` x ``patch_size``, stride ``patch_size``, bias; the patch size is fixed per
supernet), an optional class token, a learned position embedding, ``depth`` transformer blocks,
a final LayerNorm, pooling (the class token, or the mean of all tokens), dropout and a linear
classifier. Block j: ``x + proj(attn(LN(x)))`` then ``x + fc2(GELU(fc1(LN(x))))``; attention has
``l{j}.heads`` heads of a fixed ``head_dim`` (qkv: Linear(E, 3 * heads * head_dim) with bias,
proj: Linear(heads * head_dim, E) with bias), the MLP ``l{j}.mlp_ratio * E`` hidden units.
There is no batch norm anywhere: LayerNorm needs no recalibration.

Dimensions and their kinds (the trainer unlocks kinds in the order of
``workers.training.config.PHASE_ORDER``): ``depth`` (depth), ``l{j}.heads`` and
``l{j}.mlp_ratio`` (expand: the widths inside a block, which ``reorder_channels`` sorts),
``embed`` (width: the embedding width shared by every layer, the residual stream) and
``resolution`` (resolution). Weights are entangled: every layer of a subnet is the leading slice
of the largest layer (the first heads of q, k and v, the first hidden units of the MLP, the
first embedding channels of every weight, LayerNorm included).

Elastic resolution: the input is resized to ``resolution`` (bilinear); the position embedding is
stored for the largest token grid and *interpolated* (bilinear, ``align_corners=False``) to the
grid of the active resolution; the class token's position entry is kept as it is. The static
subnet stores the interpolated table (its parameter count follows the token count).

MACs count every multiply-accumulate of the convolutions, the linear layers and the two
attention products (``q @ k^T`` and ``attn @ v``: ``2 * T^2 * heads * head_dim`` per block for T
tokens); LayerNorm, softmax, GELU, scaling and additions are not counted (as batch norm and
activations are not in the other spaces).

The defaults are an ImageNet-scale space (224 px, patch 16, 1000 classes; AutoFormer-Tiny-like
widths): resolutions 160/192/224, embed 192/216/240, depth 12..14, heads 3/4 of 64, MLP ratio
3/4, class token, no stem (3 * 3 * (4^12 + 4^13 + 4^14) ~ 3.2e9 subnets). Its largest network
(224 px, embed 240, depth 14, 4 heads, ratio 4) has 2,263,242,112 MACs and 10,409,752
parameters; its smallest (160 px, embed 192, depth 12, 3 heads, ratio 3) 508,735,488 MACs and
4,811,944 parameters (both counted on the real module too: ``tests/unit/test_vit.py``). The
hybrid (``stem_channels=24, stem_stride=2, patch_size=8``): 2,307,497,344 / 527,628,288 MACs.
``fit`` sizes the space for small images (8x8 digits: a hybrid with a 16-channel stride-1 conv
stem, patch 2, mean pooling, embed 32/48/64, depth 2..4, heads 1/2 of 16, MLP ratio 2..4;
resolution 8 only, as ``mbv3`` keeps the side of images up to 16 px), so a job runs on a CPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from search_spaces.base import Dim, SearchSpace
from search_spaces.fitting import DataShape
from search_spaces.mlp import check_dropout, check_int, check_int_choices
from search_spaces.registry import register_space

POOLS = ("cls", "mean")


@dataclass(frozen=True)
class LayerCfg:
    """One transformer block of a concrete subnet: ``tokens`` in and out, embedding width
    ``embed``, ``heads`` of ``head_dim`` and ``hidden`` MLP units."""

    tokens: int
    embed: int
    heads: int
    head_dim: int
    hidden: int

    @property
    def qkv_dim(self) -> int:
        return self.heads * self.head_dim


class ViTSpace(SearchSpace):
    id = "vit"

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        patch_size: int = 16,
        resolutions: Sequence[int] = (160, 192, 224),
        embed_dims: Sequence[int] = (192, 216, 240),
        depths: Sequence[int] = (12, 13, 14),
        heads: Sequence[int] = (3, 4),
        mlp_ratios: Sequence[int] = (3, 4),
        head_dim: int = 64,
        pool: str = "cls",
        stem_channels: int = 0,
        stem_stride: int = 1,
        dropout: float = 0.0,
    ):
        sid = self.id
        self.num_classes = check_int(sid, "num_classes", num_classes, 2)
        self.in_channels = check_int(sid, "in_channels", in_channels, 1)
        self.patch_size = check_int(sid, "patch_size", patch_size, 1)
        self.resolutions = check_int_choices(sid, "resolutions", resolutions, 1)
        self.embed_dims = check_int_choices(sid, "embed_dims", embed_dims, 1)
        self.depths = check_int_choices(sid, "depths", depths, 1)
        self.heads = check_int_choices(sid, "heads", heads, 1)
        self.mlp_ratios = check_int_choices(sid, "mlp_ratios", mlp_ratios, 1)
        self.head_dim = check_int(sid, "head_dim", head_dim, 1)
        if pool not in POOLS:
            raise ValueError(
                f"space '{sid}': option 'pool' must be one of {list(POOLS)}, got {pool!r}"
            )
        self.pool = pool
        self.stem_channels = check_int(sid, "stem_channels", stem_channels, 0)
        self.stem_stride = check_int(sid, "stem_stride", stem_stride, 1)
        if self.stem_stride > 2:
            raise ValueError(
                f"space '{sid}': option 'stem_stride' must be 1 or 2, got {stem_stride}"
            )
        self.dropout = check_dropout(sid, dropout)
        self.stride = self.patch_size * (self.stem_stride if self.stem_channels else 1)
        bad = [r for r in self.resolutions if r % self.stride]
        if bad:
            raise ValueError(
                f"space '{sid}': every resolution must be a multiple of the patch stride "
                f"{self.stride} (patch_size x stem stride); {bad} are not"
            )
        self.max_depth = max(self.depths)
        dims = [
            Dim("resolution", "resolution", self.resolutions),
            Dim("depth", "depth", self.depths),
            Dim("embed", "width", self.embed_dims),
        ]
        for j in range(1, self.max_depth + 1):
            dims.append(Dim(f"l{j}.heads", "expand", self.heads))
            dims.append(Dim(f"l{j}.mlp_ratio", "expand", self.mlp_ratios))
        options = {
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "patch_size": self.patch_size,
            "resolutions": list(self.resolutions),
            "embed_dims": list(self.embed_dims),
            "depths": list(self.depths),
            "heads": list(self.heads),
            "mlp_ratios": list(self.mlp_ratios),
            "head_dim": self.head_dim,
            "pool": self.pool,
            "stem_channels": self.stem_channels,
            "stem_stride": self.stem_stride,
            "dropout": self.dropout,
        }
        super().__init__(dims, options)

    # ----- layout ---------------------------------------------------------------------------
    def active_dims(self, arch: Mapping[str, int]) -> set[str]:
        names = {"resolution", "depth", "embed"}
        for j in range(1, arch["depth"] + 1):
            names |= {f"l{j}.heads", f"l{j}.mlp_ratio"}
        return names

    @property
    def cls_token(self) -> bool:
        return self.pool == "cls"

    @property
    def patch_in(self) -> int:
        """Channels the patch embedding reads (the stem's, or the image's)."""
        return self.stem_channels or self.in_channels

    def grid(self, resolution: int) -> int:
        """Side of the token grid at ``resolution``."""
        return resolution // self.stride

    def tokens(self, resolution: int) -> int:
        return self.grid(resolution) ** 2 + int(self.cls_token)

    @property
    def max_grid(self) -> int:
        return self.grid(max(self.resolutions))

    def layers(self, arch: Mapping[str, int]) -> list[LayerCfg]:
        """The active blocks, in order: the one description counts, supernet and static share."""
        a = self.canonical(arch)
        t, e = self.tokens(a["resolution"]), a["embed"]
        return [
            LayerCfg(t, e, a[f"l{j}.heads"], self.head_dim, a[f"l{j}.mlp_ratio"] * e)
            for j in range(1, a["depth"] + 1)
        ]

    # ----- analytics ------------------------------------------------------------------------
    def flops(self, arch: Mapping[str, int]) -> int:
        a = self.canonical(arch)
        r, e = a["resolution"], a["embed"]
        g = self.grid(r)
        total = 0
        if self.stem_channels:
            side = (r - 1) // self.stem_stride + 1
            total += side * side * self.stem_channels * self.in_channels * 9
        total += g * g * e * self.patch_in * self.patch_size**2
        for c in self.layers(a):
            t = c.tokens
            total += t * c.embed * 3 * c.qkv_dim  # qkv
            total += 2 * t * t * c.qkv_dim  # q @ k^T and attn @ v
            total += t * c.qkv_dim * c.embed  # proj
            total += 2 * t * c.embed * c.hidden  # fc1, fc2
        return total + e * self.num_classes

    def params(self, arch: Mapping[str, int]) -> int:
        a = self.canonical(arch)
        e = a["embed"]
        total = 0
        if self.stem_channels:
            total += self.stem_channels * self.in_channels * 9 + self.stem_channels
        total += e * self.patch_in * self.patch_size**2 + e
        total += e * int(self.cls_token) + self.tokens(a["resolution"]) * e
        for c in self.layers(a):
            total += 2 * e + 3 * c.qkv_dim * (e + 1) + (c.qkv_dim + 1) * e  # LN, qkv, proj
            total += 2 * e + c.hidden * (e + 1) + (c.hidden + 1) * e  # LN, fc1, fc2
        return total + 2 * e + e * self.num_classes + self.num_classes

    def input_shape(self, arch: Mapping[str, int]) -> tuple[int, ...]:
        r = self.canonical(arch)["resolution"]
        return (self.in_channels, r, r)

    def short(self, arch: Mapping[str, int]) -> str:
        a = self.canonical(arch)
        d = a["depth"]
        heads = "".join(str(a[f"l{j}.heads"]) for j in range(1, d + 1))
        ratios = "".join(str(a[f"l{j}.mlp_ratio"]) for j in range(1, d + 1))
        return f"r{a['resolution']}-e{a['embed']}-d{d}-h{heads}-m{ratios}"

    def size(self) -> int:
        per_layer = len(self.heads) * len(self.mlp_ratios)
        return len(self.resolutions) * len(self.embed_dims) * sum(per_layer**d for d in self.depths)


def fit_vit(data: DataShape) -> dict[str, Any]:
    """Channels and classes from the data; the patch size and resolutions from the image side
    (up to 8 px: patch 2; up to 32: 4; up to 64: 8; larger: 16), the resolution the native side
    floored to the patch (above 16 px also one patch less); below 64 px a CPU-sized hybrid
    (conv stem of 16 channels at stride 1, mean pooling, embed 32..64, depth 2..4, heads 1..2
    of 16, MLP ratio 2..4), else the ImageNet-scale defaults."""
    c, h, w = data.input_shape
    side = min(h, w)
    patch = 2 if side <= 8 else 4 if side <= 32 else 8 if side <= 64 else 16
    top = max(patch, side // patch * patch)
    # As for mbv3: small images (up to 16 px) keep their side, larger ones also one patch less.
    resolutions = (top,) if side <= 16 else (top - patch, top)
    out: dict[str, Any] = {
        "in_channels": int(c),
        "num_classes": data.num_classes,
        "patch_size": patch,
        "resolutions": resolutions,
    }
    if side < 64:
        # A hybrid (conv stem, stride 1) with mean pooling: on a thousand 8x8 digits a plain
        # ViT with a class token stays near chance for the CPU schedule, the hybrid does not.
        out.update(
            stem_channels=16,
            stem_stride=1,
            pool="mean",
            embed_dims=(32, 48, 64),
            depths=(2, 3, 4),
            heads=(1, 2),
            head_dim=16,
            mlp_ratios=(2, 3, 4),
        )
    return out


@register_space(
    "vit",
    "Weight-entangled vision transformer: per-layer heads and MLP ratio, depth, embedding "
    "width, resolution",
    modality="image",
    fit=fit_vit,
    data_bound=("in_channels", "num_classes"),
    nn="search_spaces.nn.vit",
)
def make_vit(**options: Any) -> ViTSpace:
    return ViTSpace(**options)
