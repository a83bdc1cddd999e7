"""The ``vit`` space beyond the shared contract: its ImageNet-scale counts, the attention
products in the MAC count, fitting, options, the position embedding rule, channel reordering
and the latency units."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from search_spaces import DataShape, fitted_options, get_space
from search_spaces.nn import build_static, build_supernet, count_macs, covering_archs, latency_units
from search_spaces.nn.vit import ElasticBlock, ViTSupernet
from search_spaces.nn.vit_static import Attention, MatMul
from search_spaces.vit import ViTSpace

torch.set_num_threads(1)

TINY = {
    "num_classes": 4,
    "in_channels": 1,
    "patch_size": 2,
    "resolutions": [4, 8],
    "embed_dims": [8, 16],
    "depths": [1, 2],
    "heads": [1, 2],
    "head_dim": 4,
    "mlp_ratios": [1, 2],
}


def tiny(**extra: object) -> ViTSpace:
    space = get_space("vit", **{**TINY, **extra})
    assert isinstance(space, ViTSpace)
    return space


def _trained_like(space: ViTSpace) -> ViTSupernet:
    torch.manual_seed(0)
    net = build_supernet(space)
    assert isinstance(net, ViTSupernet)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net.eval()


@pytest.mark.parametrize(
    ("options", "largest", "smallest"),
    [
        ({}, (2_263_242_112, 10_409_752), (508_735_488, 4_811_944)),
        (
            {"stem_channels": 24, "stem_stride": 2, "patch_size": 8},
            (2_307_497_344, 10_594_744),
            (527_628_288, 4_960_072),
        ),
    ],
)
def test_imagenet_scale_counts_are_the_documented_ones_and_the_real_modules(
    options: dict[str, object], largest: tuple[int, int], smallest: tuple[int, int]
) -> None:
    space = get_space("vit", **options)
    for arch, (macs, params) in ((space.max_arch(), largest), (space.min_arch(), smallest)):
        assert (space.flops(arch), space.params(arch)) == (macs, params)
        static = build_static(space, arch)
        assert sum(p.numel() for p in static.parameters()) == params
        assert count_macs(static, space.input_shape(arch)) == macs
    assert space.input_shape(space.max_arch()) == (3, 224, 224)
    assert space.size() == 3 * 3 * (4**12 + 4**13 + 4**14)


def test_mac_count_includes_both_attention_products() -> None:
    space = tiny()
    arch = space.max_arch()
    static = build_static(space, arch)
    matmuls = [m for m in static.modules() if isinstance(m, MatMul)]
    assert len(matmuls) == 2 * arch["depth"]
    t, qd = space.tokens(arch["resolution"]), arch["l1.heads"] * space.head_dim
    # Conv and linear layers alone, then the space's count: the difference is q k^T and attn v.
    for m in matmuls:
        m.macs = None  # type: ignore[assignment,method-assign]
    without = count_macs(static, space.input_shape(arch))
    assert space.flops(arch) - without == arch["depth"] * 2 * t * t * qd


def test_attention_equals_torch_scaled_dot_product_attention() -> None:
    torch.manual_seed(0)
    attn = Attention(12, 3, 4).eval()
    x = torch.randn(2, 5, 12)
    q, k, v = attn.qkv(x).reshape(2, 5, 3, 3, 4).permute(2, 0, 3, 1, 4)
    want = attn.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 5, 12))
    with torch.no_grad():
        assert float((attn(x) - want).abs().max()) <= 1e-5


def test_fit_sizes_the_space_to_the_images() -> None:
    digits = fitted_options("vit", DataShape.of((1, 8, 8), 10))
    assert digits == {
        "in_channels": 1,
        "num_classes": 10,
        "patch_size": 2,
        "resolutions": (8,),
        "stem_channels": 16,
        "stem_stride": 1,
        "pool": "mean",
        "embed_dims": (32, 48, 64),
        "depths": (2, 3, 4),
        "heads": (1, 2),
        "head_dim": 16,
        "mlp_ratios": (2, 3, 4),
    }
    s16 = get_space("vit", **fitted_options("vit", DataShape.of((3, 16, 16), 5)))
    assert isinstance(s16, ViTSpace)
    assert (s16.patch_size, s16.resolutions, s16.max_grid) == (4, (16,), 4)
    s28 = get_space("vit", **fitted_options("vit", DataShape.of((3, 28, 30), 5)))
    assert isinstance(s28, ViTSpace)
    assert (s28.patch_size, s28.resolutions) == (4, (24, 28))
    big = fitted_options("vit", DataShape.of((3, 224, 224), 1000))
    assert big == {
        "in_channels": 3,
        "num_classes": 1000,
        "patch_size": 16,
        "resolutions": (208, 224),
    }
    with pytest.raises(ValueError, match="needs image data"):
        fitted_options("vit", DataShape.of((12,), 3))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"resolutions": [8, 9]}, "multiple of the patch stride 2"),
        ({"stem_channels": 4, "stem_stride": 2, "resolutions": [6]}, "stride 4"),
        ({"pool": "max"}, "'pool' must be one of"),
        ({"stem_stride": 3}, "1 or 2"),
        ({"heads": []}, "non-empty list"),
    ],
)
def test_bad_options_are_refused_with_the_reason(options: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny(**options)


def test_dimension_kinds_fit_the_shrinking_order() -> None:
    from workers.training.config import space_kinds

    space = tiny()
    kinds = {d.name: d.kind for d in space.dims}
    assert kinds["resolution"] == "resolution" and kinds["depth"] == "depth"
    assert kinds["embed"] == "width"
    assert kinds["l1.heads"] == kinds["l2.mlp_ratio"] == "expand"
    assert space_kinds(space) == ["depth", "expand", "width", "resolution"]


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_smaller_grids_interpolate_the_position_embedding(pool: str) -> None:
    space = tiny(pool=pool)
    net = _trained_like(space)
    arch = dict(space.max_arch(), resolution=4, embed=8)
    sub = net.extract(arch)
    c = int(pool == "cls")
    table = net.pos_embed[:, c:, :8].reshape(1, 4, 4, 8).permute(0, 3, 1, 2)
    small = F.interpolate(table, size=(2, 2), mode="bilinear", align_corners=False)
    want = small.permute(0, 2, 3, 1).reshape(1, 4, 8)
    got = sub.embed.pos_embed
    assert got.shape == (1, 4 + c, 8)
    assert torch.equal(got[:, c:], want)
    if c:
        assert torch.equal(got[:, :1], net.pos_embed[:, :1, :8])
    # The largest grid keeps the table's first channels as they are.
    full = net.extract(dict(arch, resolution=8)).embed.pos_embed
    assert torch.equal(full, net.pos_embed[:, :, :8])


def test_reordering_sorts_heads_and_hidden_units_and_keeps_full_blocks() -> None:
    space = tiny()
    net = copy.deepcopy(_trained_like(space))
    x = torch.randn(3, 1, 8, 8)
    # Every block at all heads and the largest MLP, at the largest embedding width: unchanged.
    arch = dict(space.max_arch(), depth=1)
    net.set_active(arch)
    with torch.no_grad():
        before = net(x)
        net.reorder_channels()
        after = net(x)
    assert float((before - after).abs().max()) <= 1e-5
    for block in net.blocks:
        assert isinstance(block, ElasticBlock)
        per_head = block.proj_weight.view(16, 2, 4).abs().sum((0, 2))
        assert bool((per_head[:-1] >= per_head[1:]).all())
        units = block.fc2_weight.abs().sum(0)
        assert bool((units[:-1] >= units[1:]).all())


def test_latency_units_chain_and_the_covering_archs_hold_every_unit() -> None:
    space = tiny(stem_channels=4, pool="mean")
    rng = np.random.default_rng(0)
    covered = {u.key for a in covering_archs(space) for u in latency_units(space, a)}
    for arch in [space.min_arch(), space.max_arch()] + [space.sample(rng) for _ in range(20)]:
        units = latency_units(space, arch)
        assert len(units) == arch["depth"] + 2
        assert {u.key for u in units} <= covered
        h = torch.zeros(2, *units[0].input_shape)
        for u in units:
            assert tuple(h.shape[1:]) == u.input_shape
            module: nn.Module = u.build().eval()
            with torch.no_grad():
                h = module(h)
        assert tuple(h.shape) == (2, space.num_classes)
