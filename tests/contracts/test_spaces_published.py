"""The mbv3 space at its published configuration is the Once-for-All supernet: exact parameter
counts and MACs within 1%, analytically and counted on the real static modules."""

from __future__ import annotations

import pytest
import torch

from search_spaces import get_space
from search_spaces.nn import build_static, count_macs

torch.set_num_threads(1)

# (width_mult, which arch, params, MACs in millions or None where none is published)
PUBLISHED = [
    (1.0, "max", 7_664_760, 566.2),
    (1.0, "min", 3_410_792, 121.3),
    (1.2, "max", 10_701_632, None),
    (1.2, "min", 4_602_456, None),
]


@pytest.mark.parametrize(("width", "which", "params", "mmacs"), PUBLISHED)
def test_published_counts(width: float, which: str, params: int, mmacs: float | None) -> None:
    space = get_space("mbv3", width_mult=width)
    assert space.options["num_classes"] == 1000 and space.options["in_channels"] == 3
    arch = dict(space.max_arch() if which == "max" else space.min_arch(), resolution=224)
    assert space.params(arch) == params
    static = build_static(space.spec(), arch)
    assert sum(p.numel() for p in static.parameters()) == params
    macs = count_macs(static, (3, 224, 224))
    assert macs == space.flops(arch)
    if mmacs is not None:
        assert abs(macs / 1e6 - mmacs) / mmacs < 0.01


def test_published_space_is_huge_and_spans_resolutions() -> None:
    space = get_space("mbv3")
    assert space.size() > 10**19
    assert space.dim("resolution").choices == tuple(range(128, 225, 4))
    assert space.dims[0].name == "resolution" and len(space.dims) == 1 + 5 * 9
