"""Space specs (torch-free): layout, options validation, short form and size."""

from __future__ import annotations

import pytest

from search_spaces import get_space
from search_spaces.mbv3 import MBV3Space, make_divisible
from search_spaces.mlp import MLPSpace


@pytest.mark.parametrize(
    ("value", "expected"), [(16, 16), (19.2, 24), (10, 16), (28.8, 32), (1152, 1152), (4, 8)]
)
def test_make_divisible(value: float, expected: int) -> None:
    assert make_divisible(value) == expected


def test_mbv3_layout_follows_once_for_all() -> None:
    space = get_space("mbv3")
    assert isinstance(space, MBV3Space)
    blocks = space.blocks(dict(space.max_arch(), resolution=224))
    assert len(blocks) == 21
    first = blocks[0]
    assert (first.cin, first.mid, first.cout, first.expand, first.residual) == (
        16,
        16,
        16,
        False,
        True,
    )
    b = blocks[1]  # first block of the 24 stage: 16 in, expand 6 -> 96 mid, stride 2
    assert (b.cin, b.mid, b.cout, b.stride, b.kernel, b.se_reduce) == (16, 96, 24, 2, 7, 0)
    assert b.size_in == 112 and b.size_out == 56 and not b.residual
    assert blocks[2].residual and blocks[2].mid == 144
    se_stages = {blk.cout for blk in blocks[1:] if blk.se_reduce}
    assert se_stages == {40, 112, 160}
    assert blocks[5].se_reduce == make_divisible(blocks[5].mid // 4)
    assert [blk.act for blk in blocks[1:]] == ["relu"] * 8 + ["hswish"] * 12
    assert blocks[-1].size_out == 7
    assert (space.head_width, space.last_width) == (960, 1280)


def test_small_input_downsamples_eight_times() -> None:
    space = get_space("mbv3", small_input=True, num_classes=10)
    assert space.dim("resolution").choices == (24, 28, 32)
    arch = dict(space.min_arch(), resolution=32)
    assert space.blocks(arch)[-1].size_out == 4
    eight = get_space("mbv3", small_input=True, resolutions=[8])
    assert eight.blocks(eight.max_arch())[-1].size_out == 1


def test_mbv3_short_form_and_size() -> None:
    space = get_space("mbv3")
    arch = dict(space.min_arch(), resolution=160)
    arch.update({"s2.depth": 3, "s2.b3.kernel": 7, "s2.b3.expand": 6})
    assert space.short(arch) == "r160-d23222-k33.337.33.33.33-e33.336.33.33.33"
    assert space.size() == 25 * (9**2 + 9**3 + 9**4) ** 5
    assert space.size() > 10**19
    tiny = get_space("mbv3", resolutions=[32], kernels=[3], expands=[3], depths=[1])
    assert tiny.size() == 1 and tiny.min_arch() == tiny.max_arch()


@pytest.mark.parametrize(
    ("options", "field", "value"),
    [
        ({"width_mult": 0}, "width_mult", "0"),
        ({"width_mult": "big"}, "width_mult", "'big'"),
        ({"kernels": [3, 4]}, "kernels", "4"),
        ({"depths": [2, 5]}, "depths", "5"),
        ({"resolutions": [4]}, "resolutions", "4"),
        ({"resolutions": []}, "resolutions", "[]"),
        ({"expands": [3, 3]}, "expands", "[3, 3]"),
        ({"num_classes": 1}, "num_classes", "1"),
        ({"in_channels": 0}, "in_channels", "0"),
        ({"dropout": 1.5}, "dropout", "1.5"),
        ({"small_input": "yes"}, "small_input", "true or false"),
    ],
)
def test_mbv3_rejects_bad_options_clearly(
    options: dict[str, object], field: str, value: str
) -> None:
    with pytest.raises(ValueError) as err:
        get_space("mbv3", **options)
    assert field in str(err.value) and value in str(err.value)


def test_mlp_counts_by_hand() -> None:
    space = get_space("mlp", in_features=10, num_classes=3, widths=[4, 8], depths=[1, 2])
    assert isinstance(space, MLPSpace)
    arch = {"depth": 2, "l1.width": 8, "l2.width": 4}
    assert space.params(arch) == 10 * 8 + 16 + 8 * 4 + 8 + 4 * 3 + 3
    assert space.flops(arch) == 10 * 8 + 8 * 4 + 4 * 3
    assert space.short(arch) == "w8-4"
    assert space.size() == 2 + 4
    assert space.canonical({"depth": 1, "l1.width": 4, "l2.width": 8}) == {
        "depth": 1,
        "l1.width": 4,
        "l2.width": 4,
    }
    assert space.input_shape(arch) == (10,)


@pytest.mark.parametrize(
    ("options", "field"),
    [({"widths": []}, "widths"), ({"depths": [0]}, "depths"), ({"in_features": -1}, "in_features")],
)
def test_mlp_rejects_bad_options_clearly(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        get_space("mlp", **options)


def test_space_specs_do_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from search_spaces import get_space; get_space('mbv3'); get_space('mlp'); "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_invalid_arch_survives_pickling() -> None:
    import pickle

    from search_spaces import InvalidArch

    err = pickle.loads(pickle.dumps(InvalidArch("mbv3", "s1.depth", 9, (2, 3, 4))))
    assert (err.dim, err.value, err.allowed) == ("s1.depth", 9, (2, 3, 4))
    assert str(err) == "invalid arch for space 'mbv3': s1.depth=9; allowed values are [2, 3, 4]"
