"""The shared device rule (``workers.devices``) and BN recalibration on a chosen device.

Only torch, numpy and the torch-only parts of the repo (``search_spaces``, ``workers.devices``,
``workers.bn``) are imported here, so the ``gpu`` tests of this file run on a machine that has
CUDA torch and nothing of the service (``benchmarks/gpu/run.sh``).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from search_spaces import get_space
from search_spaces.nn import Supernet, build_supernet
from tests.workers.spaces import TINY_MBV3
from workers.bn import calibration_batches, recalibrate_bn
from workers.devices import resolve_device, to_device

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _supernet() -> Supernet:
    torch.manual_seed(0)
    return build_supernet(get_space("mbv3", **TINY_MBV3))


def _bn_buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items() if "running" in k}


def _by_torch_rule(module: nn.Module, batches: list[torch.Tensor]) -> None:
    """What ``recalibrate_bn`` did before it counted on the host: BN's own ``momentum=None``."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    with torch.no_grad():
        for x in batches:
            module(x)
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
    module.eval()


def test_auto_is_the_cpu_here_and_cuda_without_a_gpu_is_a_clear_error() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:0", "cuda:1"):
            with pytest.raises(RuntimeError, match=f"device '{name}' asked for.*sees no CUDA GPU"):
                resolve_device(name)
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(ValueError, match="unsupported device 'meta'"):
        resolve_device("meta")


def test_training_evaluation_and_export_share_the_rule() -> None:
    import workers.devices as devices

    # The trainer's names are the shared ones (re-exported where training always had them).
    distributed = pytest.importorskip("workers.training.distributed")
    assert distributed.resolve_device is devices.resolve_device
    assert distributed.to_device is devices.to_device


def test_to_device_is_the_tensor_itself_on_its_own_device() -> None:
    t = torch.arange(4.0)
    assert to_device(t, torch.device("cpu")) is t


def test_recalibration_on_the_cpu_is_bn_momentum_none_bit_for_bit() -> None:
    net = _supernet()
    space = net.space
    arch = space.max_arch()
    arch["resolution"] = 8
    net.set_active(space.canonical(arch))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, *space.input_shape(space.max_arch()), generator=g)
    batches = [net.prepare_input(b) for b in calibration_batches(x, 16)]  # 16+16+16+2
    momenta = [m.momentum for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    ref = _supernet()
    ref.set_active(space.canonical(arch))
    _by_torch_rule(ref, batches)
    for device in (None, "cpu", torch.device("cpu")):
        assert recalibrate_bn(net, batches, device=device) == 50
        got, want = _bn_buffers(net), _bn_buffers(ref)
        assert got.keys() == want.keys()
        for k in want:
            assert torch.equal(got[k], want[k]), k
    # The static subnet too, and the hooks and momenta are gone / put back afterwards.
    sub = net.extract(space.canonical(arch))
    sub_ref = net.extract(space.canonical(arch))
    recalibrate_bn(sub, batches, device="cpu")
    _by_torch_rule(sub_ref, batches)
    for k, v in _bn_buffers(sub_ref).items():
        assert torch.equal(_bn_buffers(sub)[k], v), k
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [m.momentum for m in bns] == momenta
    assert not any(m._forward_pre_hooks for m in bns)
    assert not net.training


def test_recalibration_refuses_a_device_this_process_lacks() -> None:
    if torch.cuda.is_available():
        pytest.skip("this process has a GPU")
    net = _supernet()
    with pytest.raises(RuntimeError, match="sees no CUDA GPU"):
        recalibrate_bn(net, [torch.randn(2, 1, 12, 12)], device="cuda")


@pytest.mark.gpu
@needs_gpu
def test_on_cuda_the_rule_picks_the_gpu_and_names_missing_indices() -> None:
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    n = torch.cuda.device_count()
    with pytest.raises(RuntimeError, match=f"sees {n} CUDA GPU"):
        resolve_device(f"cuda:{n}")
    t = torch.arange(4.0)
    on = to_device(t, torch.device("cuda"))
    assert on.device.type == "cuda" and torch.equal(on.cpu(), t)


@pytest.mark.gpu
@needs_gpu
def test_recalibration_on_cuda_matches_the_cpu() -> None:
    dev = torch.device("cuda")
    net = _supernet()
    space = net.space
    arch = space.canonical({**space.max_arch(), "resolution": 12})
    net.set_active(arch)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(200, *space.input_shape(space.max_arch()), generator=g)
    batches = [net.prepare_input(b) for b in calibration_batches(x, 64)]
    sub_cpu = net.extract(arch)
    sub_gpu = net.extract(arch).to(dev)
    recalibrate_bn(sub_cpu, batches, device="cpu")
    # Host batches, moved one by one by recalibrate_bn.
    assert recalibrate_bn(sub_gpu, batches, device=dev) == 200
    want, got = _bn_buffers(sub_cpu), _bn_buffers(sub_gpu)
    for k, v in want.items():
        assert torch.allclose(got[k], v, rtol=1e-3, atol=1e-4), k
    probe = torch.randn(8, *space.input_shape(arch), generator=g)
    with torch.no_grad():
        out_cpu = sub_cpu(probe)
        out_gpu = sub_gpu(probe.to(dev)).cpu()
    scale = float(out_cpu.abs().max())
    assert float((out_gpu - out_cpu).abs().max()) <= 1e-3 * max(scale, 1.0)
