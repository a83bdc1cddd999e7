"""Elastic layers and supernet mechanics: kernel transforms, sliced batch norm (including the
cumulative statistics BN recalibration uses), gradients, depth skipping and input resizing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from search_spaces import get_space
from search_spaces.nn import build_supernet
from search_spaces.nn.elastic import ElasticBatchNorm2d, ElasticDepthwise
from search_spaces.nn.mbv3 import ElasticBlock
from workers.bn import recalibrate_bn

torch.set_num_threads(1)

TINY = {
    "small_input": True,
    "width_mult": 0.25,
    "num_classes": 4,
    "resolutions": [8, 12],
    "kernels": [3, 5, 7],
    "expands": [2, 3],
    "depths": [1, 2],
    "dropout": 0.0,  # train-mode parity below compares deterministic outputs
}


def test_identity_transforms_give_centre_crops() -> None:
    dw = ElasticDepthwise(6, (3, 5, 7), stride=1)
    w = dw.weight.detach()
    assert torch.equal(dw.kernel_weight(6, 7), dw.weight)
    assert torch.allclose(dw.kernel_weight(6, 5), w[:, :, 1:6, 1:6])
    assert torch.allclose(dw.kernel_weight(4, 3), w[:4, :, 2:5, 2:5])


def test_learned_transforms_chain_from_the_larger_kernel() -> None:
    torch.manual_seed(0)
    dw = ElasticDepthwise(5, (3, 5, 7), stride=2)
    with torch.no_grad():
        for p in dw.transforms.values():
            p.copy_(torch.randn_like(p))
    w = dw.weight.detach()
    t5, t3 = dw.transforms["k5"].detach(), dw.transforms["k3"].detach()
    k5 = (w[:, :, 1:6, 1:6].reshape(5, 25) @ t5.T).reshape(5, 1, 5, 5)
    k3 = (k5[:, :, 1:4, 1:4].reshape(5, 9) @ t3.T).reshape(5, 1, 3, 3)
    assert torch.allclose(dw.kernel_weight(5, 5), k5, atol=1e-6)
    assert torch.allclose(dw.kernel_weight(5, 3), k3, atol=1e-6)
    dw.kernel = 3
    x = torch.randn(2, 5, 9, 9)
    assert torch.allclose(dw(x), F.conv2d(x, k3, None, 2, 1, 1, 5), atol=1e-6)
    assert dw(x).shape == (2, 5, 5, 5)


def test_sliced_batch_norm_matches_a_small_batch_norm_and_keeps_the_rest() -> None:
    torch.manual_seed(0)
    big, small = ElasticBatchNorm2d(8, momentum=None), nn.BatchNorm2d(4, momentum=None)
    assert isinstance(big, nn.BatchNorm2d)
    xs = [torch.randn(6, 4, 3, 3) * (i + 1) + i for i in range(3)]
    for x in xs:
        assert torch.allclose(big(x), small(x), atol=1e-6)
    assert torch.allclose(big.running_mean[:4], small.running_mean, atol=1e-6)
    assert torch.allclose(big.running_var[:4], small.running_var, atol=1e-6)
    expected_mean = torch.stack([x.mean((0, 2, 3)) for x in xs]).mean(0)
    assert torch.allclose(big.running_mean[:4], expected_mean, atol=1e-5)
    assert torch.equal(big.running_mean[4:], torch.zeros(4))
    assert torch.equal(big.running_var[4:], torch.ones(4))
    assert int(big.num_batches_tracked) == 3
    big.eval()
    small.eval()
    x = torch.randn(2, 4, 3, 3)
    assert torch.allclose(big(x), small(x), atol=1e-6)


def test_bn_recalibration_on_the_supernet_equals_it_on_the_extracted_subnet() -> None:
    torch.manual_seed(0)
    space = get_space("mbv3", **TINY)
    net = build_supernet(space)
    arch = space.sample(np.random.default_rng(3))
    net.set_active(arch)
    sub = net.extract(arch)
    batches = [net.prepare_input(torch.randn(8, 3, 16, 16)) for _ in range(3)]
    assert recalibrate_bn(net, batches) == 24
    assert recalibrate_bn(sub, batches) == 24
    x = batches[0][:2]
    with torch.no_grad():
        assert float((net(x) - sub(x)).abs().max()) <= 1e-5
        assert float((net.extract(arch).eval()(x) - sub(x)).abs().max()) <= 1e-5


def test_training_mode_forward_and_gradients_match_the_static_subnet() -> None:
    torch.manual_seed(0)
    space = get_space("mbv3", **TINY)
    net = build_supernet(space)
    arch = dict(space.min_arch(), resolution=8)
    net.set_active(arch)
    sub = net.extract(arch)
    net.train()
    sub.train()
    x = torch.randn(4, 3, 8, 8)
    y_net, y_sub = net(x), sub(x)
    assert torch.allclose(y_net, y_sub, atol=1e-5)
    y_net.square().sum().backward()
    y_sub.square().sum().backward()
    block = net.stages[0][0]
    assert isinstance(block, ElasticBlock)
    mid = block.mid
    assert mid < block.mid_max
    grad = block.expand_conv.weight.grad
    assert grad is not None
    static_grad = sub.blocks[1].expand[0].weight.grad
    assert torch.allclose(grad[:mid], static_grad, atol=1e-5)
    assert torch.equal(grad[mid:], torch.zeros_like(grad[mid:]))
    # kernel 3 is active, so both learned transforms receive gradient
    assert float(block.depthwise.transforms["k3"].grad.abs().sum()) > 0
    assert float(block.depthwise.transforms["k5"].grad.abs().sum()) > 0
    # depth 1 of 2: the second block of each stage is skipped entirely
    assert all(p.grad is None for p in net.stages[0][1].parameters())


def test_prepare_input_resizes_to_the_active_resolution() -> None:
    space = get_space("mbv3", **TINY)
    net = build_supernet(space)
    net.set_active(dict(space.max_arch(), resolution=8))
    x = torch.randn(2, 3, 12, 12)
    out = net.prepare_input(x)
    assert out.shape == (2, 3, 8, 8)
    assert torch.allclose(out, F.interpolate(x, size=(8, 8), mode="bilinear"))
    same = torch.randn(2, 3, 8, 8)
    assert net.prepare_input(same) is same
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*\(2, 1, 8, 8\)"):
        net.prepare_input(torch.randn(2, 1, 8, 8))


def test_mlp_supernet_flattens_images() -> None:
    space = get_space("mlp", in_features=12, widths=[4, 8], depths=[1, 2], num_classes=3)
    net = build_supernet(space).eval()
    x = torch.randn(5, 3, 2, 2)
    assert net.prepare_input(x).shape == (5, 12)
    assert net(x).shape == (5, 3)
    with pytest.raises(ValueError, match=r"expects 12 input features.*got 8"):
        net(torch.randn(5, 8))
