"""The contract every registered search space and its supernet must honour.

Small resolutions and tiny widths keep it fast; the published-network counts live in
test_spaces_published.py.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from search_spaces import InvalidArch, SearchSpace, get_space, list_spaces
from search_spaces.nn import Supernet, build_static, build_supernet, count_macs

torch.set_num_threads(1)

CONFIGS: dict[str, dict[str, Any]] = {
    "mbv3-w1.0": {"id": "mbv3", "width_mult": 1.0, "num_classes": 10, "resolutions": [32, 40]},
    "mbv3-w1.2": {"id": "mbv3", "width_mult": 1.2, "num_classes": 10, "resolutions": [32]},
    "mbv3-small-input": {
        "id": "mbv3",
        "small_input": True,
        "num_classes": 10,
        "in_channels": 1,
        "resolutions": [8, 12],
        "width_mult": 0.5,
    },
    "mbv3-tiny": {
        "id": "mbv3",
        "small_input": True,
        "width_mult": 0.25,
        "num_classes": 5,
        "resolutions": [8, 16],
        "kernels": [3, 5, 7],
        "expands": [2, 3],
        "depths": [1, 2],
    },
    "mlp": {"id": "mlp", "in_features": 12, "widths": [8, 16, 24], "depths": [1, 2, 3]},
    # Class token, no stem, two resolutions (position embedding interpolated from 4x4 to 3x3).
    "vit-cls": {
        "id": "vit",
        "num_classes": 10,
        "in_channels": 1,
        "patch_size": 2,
        "resolutions": [6, 8],
        "embed_dims": [8, 12, 16],
        "depths": [1, 2, 3],
        "heads": [1, 2],
        "head_dim": 4,
        "mlp_ratios": [1, 2],
    },
    # The hybrid: a stride-2 conv stem, mean pooling, patch 2 (grids 1x1 and 2x2).
    "vit-hybrid": {
        "id": "vit",
        "num_classes": 5,
        "in_channels": 3,
        "patch_size": 2,
        "resolutions": [4, 8],
        "embed_dims": [8, 16],
        "depths": [1, 2],
        "heads": [1, 2, 3],
        "head_dim": 4,
        "mlp_ratios": [1, 2, 3],
        "pool": "mean",
        "stem_channels": 6,
        "stem_stride": 2,
    },
}
IDS = list(CONFIGS)
_NETS: dict[str, Supernet] = {}


def make_space(key: str) -> SearchSpace:
    return get_space(**CONFIGS[key])


def batch(space: SearchSpace, arch: dict[str, int], n: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *space.input_shape(arch), generator=g)


def trained_like(key: str) -> Supernet:
    """A supernet whose BN statistics, affine params and kernel transforms are not at their
    initial values, so parity checks exercise every part of extraction. Cached per config."""
    if key in _NETS:
        return _NETS[key]
    torch.manual_seed(0)
    space = make_space(key)
    net = build_supernet(space)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "transforms" in name or p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
        net.train()
        rng = np.random.default_rng(1)
        for i in range(3):
            arch = space.sample(rng) if i else space.max_arch()
            net.set_active(arch)
            net(batch(space, arch, n=4, seed=i))
    net.eval()
    _NETS[key] = net
    return net


def random_archs(space: SearchSpace, n: int, seed: int) -> list[dict[str, int]]:
    rng = np.random.default_rng(seed)
    return [space.min_arch(), space.max_arch()] + [space.sample(rng) for _ in range(n)]


def test_every_registered_space_is_covered() -> None:
    assert {c["id"] for c in CONFIGS.values()} == set(list_spaces())


@pytest.mark.parametrize("key", IDS)
@given(seed=st.integers(0, 2**32 - 1))
def test_encode_decode_round_trip(key: str, seed: int) -> None:
    space = make_space(key)
    arch = space.sample(np.random.default_rng(seed))
    g = space.encode(arch)
    assert len(g) == len(space.dims)
    assert space.decode(g) == arch
    assert space.from_json(json.dumps(space.to_json(arch))) == arch
    # any genotype decodes to a canonical arch that encodes back to a canonical genotype
    rng = np.random.default_rng(seed)
    raw = tuple(int(rng.integers(0, c)) for c in space.cardinalities())
    canon = space.decode(raw)
    assert space.decode(space.encode(canon)) == canon


@pytest.mark.parametrize("key", IDS)
def test_seeded_sampling_is_deterministic(key: str) -> None:
    space = make_space(key)
    first = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    again = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert first == again
    many = {space.encode(space.sample(np.random.default_rng(s))) for s in range(20)}
    assert len(many) > 1


@pytest.mark.parametrize("key", IDS)
def test_spec_rebuilds_the_same_space(key: str) -> None:
    space = make_space(key)
    again = get_space(**json.loads(json.dumps(space.spec())))
    assert again.dims == space.dims
    arch = space.max_arch()
    assert again.flops(arch) == space.flops(arch) and again.params(arch) == space.params(arch)


@pytest.mark.parametrize("key", IDS)
def test_extract_equals_supernet_for_min_max_and_random_archs(key: str) -> None:
    space = make_space(key)
    net = trained_like(key)
    for i, arch in enumerate(random_archs(space, 20, seed=11)):
        net.set_active(arch)
        x = net.prepare_input(batch(space, arch, seed=i))
        sub = net.extract(arch).eval()
        with torch.no_grad():
            want, got = net(x), sub(x)
        assert want.shape == (3, space.options["num_classes"])
        assert float(want.std()) > 1e-3  # not a degenerate constant output
        assert float((want - got).abs().max()) <= 1e-5, space.short(arch)


@pytest.mark.parametrize("key", ["mbv3-tiny", "mlp", "vit-hybrid"])
@given(seed=st.integers(0, 2**32 - 1))
def test_extract_equals_supernet_for_any_arch(key: str, seed: int) -> None:
    space = make_space(key)
    net = trained_like(key)
    arch = space.sample(np.random.default_rng(seed))
    net.set_active(arch)
    x = net.prepare_input(batch(space, arch, seed=seed % 1000))
    with torch.no_grad():
        diff = (net(x) - net.extract(arch).eval()(x)).abs().max()
    assert float(diff) <= 1e-5, space.short(arch)


@pytest.mark.parametrize("key", IDS)
def test_reordering_keeps_the_largest_network(key: str) -> None:
    space = make_space(key)
    net = copy.deepcopy(trained_like(key))
    arch = space.max_arch()
    net.set_active(arch)
    x = batch(space, arch, seed=5)
    with torch.no_grad():
        before = net(x)
        state = {k: v.clone() for k, v in net.state_dict().items()}
        net.reorder_channels()
        after = net(x)
    assert float((before - after).abs().max()) <= 1e-5
    changed = [k for k, v in net.state_dict().items() if not torch.equal(v, state[k])]
    assert changed, "reordering permuted nothing"


@pytest.mark.parametrize("key", IDS)
def test_analytic_params_and_macs_match_the_real_module(key: str) -> None:
    space = make_space(key)
    net = trained_like(key)
    for arch in random_archs(space, 6, seed=3):
        sub = net.extract(arch)
        assert sum(p.numel() for p in sub.parameters()) == space.params(arch)
        assert count_macs(sub, space.input_shape(arch)) == space.flops(arch)
    net.set_active(space.max_arch())
    assert count_macs(net, space.input_shape(space.max_arch())) == space.flops(space.max_arch())


@pytest.mark.parametrize("key", IDS)
def test_build_static_loads_extracted_weights(key: str) -> None:
    space = make_space(key)
    net = trained_like(key)
    for i, arch in enumerate(random_archs(space, 2, seed=5)):
        sub = net.extract(arch).eval()
        static = build_static(json.loads(json.dumps(space.spec())), json.loads(json.dumps(arch)))
        assert {k: v.shape for k, v in static.state_dict().items()} == {
            k: v.shape for k, v in sub.state_dict().items()
        }
        static.load_state_dict(sub.state_dict())
        static.eval()
        net.set_active(arch)
        x = net.prepare_input(batch(space, arch, seed=i))
        with torch.no_grad():
            assert float((static(x) - sub(x)).abs().max()) == 0.0


@pytest.mark.parametrize("key", IDS)
def test_invalid_archs_name_dimension_value_and_choices(key: str) -> None:
    space = make_space(key)
    arch = dict(space.max_arch())
    dim = space.dims[-1]
    bad = dict(arch, **{dim.name: 999})
    with pytest.raises(InvalidArch) as err:
        space.canonical(bad)
    msg = str(err.value)
    assert dim.name in msg and "999" in msg and str(list(dim.choices)) in msg
    assert err.value.dim == dim.name and err.value.value == 999
    missing = {k: v for k, v in arch.items() if k != dim.name}
    with pytest.raises(InvalidArch, match=dim.name):
        space.encode(missing)
    with pytest.raises(InvalidArch, match="bogus"):
        space.canonical(dict(arch, bogus=1))
    with pytest.raises(InvalidArch, match=dim.name):
        trained_like(key).set_active(bad)
    with pytest.raises(InvalidArch, match="genes"):
        space.decode((0,))


@pytest.mark.parametrize("key", IDS)
def test_restrict_limits_sampling_but_not_encoding(key: str) -> None:
    space = make_space(key)
    kind = "kernel" if space.id == "mbv3" else "width"
    dims = [d for d in space.dims if d.kind == kind]
    keep = dims[0].choices[-1]
    view = space.restrict(**{kind: (keep,)})
    rng = np.random.default_rng(0)
    for _ in range(10):
        arch = view.sample(rng)
        active = space.active_dims(arch)
        assert all(arch[d.name] == keep for d in dims if d.name in active)
        assert space.decode(space.encode(arch)) == arch
    assert view.min_arch() == view.max_arch() or view.min_arch() != space.min_arch()
    assert space.allowed[dims[0].name] == dims[0].choices  # the original is untouched
    with pytest.raises(ValueError, match="no choice"):
        space.restrict(**{kind: (12345,)})
    with pytest.raises(ValueError, match="no dimension"):
        space.restrict(colour=(1,))


@pytest.mark.parametrize("key", IDS)
def test_features_are_one_hot_per_active_dimension(key: str) -> None:
    space = make_space(key)
    arch = space.sample(np.random.default_rng(4))
    f = space.features(arch)
    assert f.shape == (space.num_features(),)
    assert f.sum() == len(space.active_dims(arch))
    assert space.size() >= len(
        {space.encode(space.sample(np.random.default_rng(s))) for s in range(30)}
    )
