"""Subnet export: weights + arch JSON, TorchScript and ONNX, each checked against the supernet."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from search_spaces import get_space
from search_spaces.base import SearchSpace
from search_spaces.nn import Supernet, build_static, build_supernet
from tests.workers.spaces import TINY_MBV3
from workers.export import ExportParityError, export_subnet

torch.set_num_threads(1)


def perturbed(space: SearchSpace) -> Supernet:
    """A supernet with non-trivial BN statistics and kernel transforms."""
    torch.manual_seed(0)
    net = build_supernet(space)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "transforms" in name or p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
        net.train()
        net(net.prepare_input(torch.randn(8, *space.input_shape(space.max_arch()))))
    return net.eval()


@pytest.fixture(scope="module")
def mbv3() -> tuple[SearchSpace, Supernet, dict[str, int]]:
    space = get_space("mbv3", **TINY_MBV3)
    net = perturbed(space)
    arch = space.sample(np.random.default_rng(2))
    arch["resolution"] = 8
    return space, net, space.canonical(arch)


def reference(net: Supernet, arch: dict[str, int], x: torch.Tensor) -> torch.Tensor:
    net.set_active(arch)
    with torch.no_grad():
        return net(net.prepare_input(x))


def check_artifact(path: Path, sha: str, size: int) -> None:
    assert path.is_file()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    assert path.stat().st_size == size
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_weights_reload_without_the_supernet(mbv3, tmp_path: Path) -> None:
    space, net, arch = mbv3
    x = torch.randn(3, 1, 12, 12)  # resized to the arch's resolution by the supernet
    res = export_subnet(net, space, arch, "weights", tmp_path, x)
    check_artifact(res.path, res.sha256, res.size)
    assert res.path.suffix == ".pt" and res.max_abs_diff <= 1e-5
    payload = torch.load(res.path, weights_only=True)
    assert payload["arch"] == arch and payload["space"] == space.spec()
    static = build_static(payload["space"], payload["arch"])
    static.load_state_dict(payload["state_dict"])
    static.eval()
    x8 = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        got = static(x8)
    assert float((got - reference(net, arch, x8)).abs().max()) <= 1e-5
    # the export leaves the supernet's own active arch alone
    other = space.max_arch()
    net.set_active(other)
    export_subnet(net, space, arch, "weights", tmp_path, x)
    assert net.active == other


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_runs_other_batch_sizes(mbv3, tmp_path: Path) -> None:
    space, net, arch = mbv3
    res = export_subnet(net, space, arch, "torchscript", tmp_path)
    check_artifact(res.path, res.sha256, res.size)
    assert res.path.name.endswith(".ts.pt")
    module = torch.jit.load(str(res.path))
    x = torch.randn(7, 1, 8, 8)
    with torch.no_grad():
        assert float((module(x) - reference(net, arch, x)).abs().max()) <= 1e-5


@pytest.mark.parametrize("exporter", ["auto", pytest.param("dynamo", marks=pytest.mark.slow)])
def test_onnx_has_a_dynamic_batch_axis(mbv3, tmp_path: Path, exporter: str) -> None:
    space, net, arch = mbv3
    res = export_subnet(net, space, arch, "onnx", tmp_path, onnx_exporter=exporter)
    check_artifact(res.path, res.sha256, res.size)
    assert [p.name for p in tmp_path.iterdir()] == [res.path.name]  # one self-contained file
    session = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    x = torch.randn(6, 1, 8, 8)
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert out.shape == (6, 4)
    assert float((torch.from_numpy(out) - reference(net, arch, x)).abs().max()) <= 1e-4


def test_mlp_exports_and_named_files(tmp_path: Path) -> None:
    space = get_space("mlp", in_features=6, widths=[4, 8], depths=[1, 2], num_classes=3)
    net = perturbed(space)
    arch = {"depth": 2, "l1.width": 8, "l2.width": 4}
    res = export_subnet(net, space, arch, "weights", tmp_path, name="best")
    assert res.path == tmp_path / "best.pt"
    res2 = export_subnet(
        net.extract(arch), space, arch, "onnx", tmp_path, onnx_exporter="torchscript"
    )
    assert res2.path.name.startswith("mlp-") and res2.max_abs_diff <= 1e-4
    again = export_subnet(net, space, arch, "weights", tmp_path, name="best")
    assert again.path == res.path  # replaced in place
    first, second = (
        torch.load(res.path, weights_only=True),
        torch.load(again.path, weights_only=True),
    )
    assert first["arch"] == second["arch"] == arch
    assert all(torch.equal(v, second["state_dict"][k]) for k, v in first["state_dict"].items())


class Shifted(nn.Sequential):
    """A static MLP whose own output is off by 1e-3: its weights alone cannot reproduce it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + 1e-3


def test_parity_failure_raises_and_leaves_no_file(tmp_path: Path) -> None:
    space = get_space("mlp", in_features=6, widths=[4], depths=[1], num_classes=3)
    arch = space.max_arch()
    module = Shifted(*build_static(space, arch))
    with pytest.raises(ExportParityError, match=r"weights export of w4 differs .* tolerance 1e-05"):
        export_subnet(module, space, arch, "weights", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_bad_format_and_arch_are_named(mbv3, tmp_path: Path) -> None:
    space, net, arch = mbv3
    with pytest.raises(ValueError, match=r"fmt='pickle'.*\['weights', 'torchscript', 'onnx'\]"):
        export_subnet(net, space, arch, "pickle", tmp_path)
    with pytest.raises(ValueError, match="onnx_exporter='tf'"):
        export_subnet(net, space, arch, "onnx", tmp_path, onnx_exporter="tf")
    with pytest.raises(ValueError, match=r"s1\.depth=9"):
        export_subnet(net, space, dict(arch, **{"s1.depth": 9}), "weights", tmp_path)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("fmt", ["weights", "torchscript", "onnx"])
def test_exports_take_raw_channels_last_uint8_images(mbv3, tmp_path: Path, fmt: str) -> None:
    """An image set stored as uint8 (N, H, W, C) at 12x12: the exported file takes those raw
    arrays (scaled, normalised, channels moved, resized to the arch's 8x8 inside the graph) and
    gives the supernet's output on the same samples."""
    from search_spaces.nn import load_subnet
    from search_spaces.nn.preprocess import Preprocess

    space, net, arch = mbv3
    spec = {"layout": "NHWC", "dtype": "uint8", "scale": 255.0, "mean": [0.4], "std": [0.2]}
    raw = torch.from_numpy(
        np.random.default_rng(0).integers(0, 256, size=(3, 12, 12, 1), dtype=np.uint8)
    )
    x = Preprocess(spec, (1, 12, 12)).normalise(raw)
    assert x.shape == (3, 1, 12, 12)
    ref = reference(net, arch, x)
    res = export_subnet(
        net, space, arch, fmt, tmp_path, x, preprocessing=spec, raw_input=raw, metadata={"a": 1}
    )
    with torch.no_grad():
        if fmt == "weights":
            out = load_subnet(str(res.path))(raw)
            meta = torch.load(res.path, weights_only=True)["metadata"]
            assert meta["preprocessing"]["input_shape"] == [12, 12, 1] and meta["a"] == 1
        elif fmt == "torchscript":
            out = torch.jit.load(str(res.path))(raw)
        else:
            session = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
            assert session.get_inputs()[0].type == "tensor(uint8)"
            (o,) = session.run(["logits"], {"input": raw.numpy()})
            out = torch.from_numpy(o)
    assert torch.allclose(out, ref, atol=1e-4)
    with pytest.raises(ValueError, match="preprocessing needs raw_input"):
        export_subnet(net, space, arch, fmt, tmp_path, x, preprocessing=spec)


# ----- devices: the recalibration runs on the worker's device, the files come from the CPU ------
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
DIGITS_TINY = {**TINY_MBV3, "num_classes": 10}  # digits: 1 x 8 x 8 images, 10 classes


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SearchSpace]:
    """A supernet (perturbed, untrained) saved as a training run's final.pt for digits."""
    from workers.training.checkpoint import save_final

    space = get_space("mbv3", **DIGITS_TINY)
    path = tmp_path_factory.mktemp("ck") / "final.pt"
    save_final(space, perturbed(space), path, {})
    return path, space


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def test_on_cpu_copies_only_what_is_elsewhere(mbv3) -> None:
    from workers.export import on_cpu

    _, net, _ = mbv3
    assert on_cpu(net) is net
    lone = nn.Linear(2, 2)
    assert on_cpu(lone) is lone


def test_the_export_recalibration_on_the_cpu_device_is_the_old_one_bit_for_bit(
    digits_checkpoint: tuple[Path, SearchSpace],
) -> None:
    from workers.bn import calibration_batches
    from workers.pipeline.job import DataRef
    from workers.pipeline.work import bn_subset
    from workers.pipeline.work.export import recalibrated_subnet
    from workers.training import load_checkpoint

    path, space = digits_checkpoint
    ref = DataRef("digits", 0)
    arch = space.canonical({**space.max_arch(), "resolution": 8})
    _, net = load_checkpoint(path)
    net.set_active(arch)
    by_hand = net.extract(arch)
    batches = [net.prepare_input(b) for b in calibration_batches(bn_subset(ref, 3), 200)]
    recalibrate_bn_old_rule(by_hand, batches)
    devices = ["cpu"] if torch.cuda.is_available() else ["cpu", "auto"]  # auto: the CPU here
    for device in devices:
        sub, example, _raw = recalibrated_subnet(path, ref, arch, 3, device)
        assert not sub.training and example.device.type == "cpu"
        got = _state(sub)
        for k, v in _state(by_hand).items():
            assert torch.equal(got[k], v), (device, k)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="sees no CUDA GPU"):
            recalibrated_subnet(path, ref, arch, 3, "cuda")


def recalibrate_bn_old_rule(module: nn.Module, batches: list[torch.Tensor]) -> None:
    """BN's own cumulative average (``momentum=None``), what recalibration always computed."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    with torch.no_grad():
        for x in batches:
            module(x)
    for m in bns:
        m.momentum = 0.1
    module.eval()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_write_export_takes_the_device(
    digits_checkpoint: tuple[Path, SearchSpace], tmp_path: Path
) -> None:
    from workers.pipeline.job import DataRef
    from workers.pipeline.work.export import write_export

    path, space = digits_checkpoint
    arch = space.canonical(space.min_arch())
    ref = DataRef("digits", 0)
    res = write_export(path, ref, arch, "weights", tmp_path / "a.pt", 3, None, "cpu")
    default = write_export(path, ref, arch, "weights", tmp_path / "b.pt", 3)
    one, two = (torch.load(p, weights_only=True) for p in (res.path, default.path))
    assert one["state_dict"].keys() == two["state_dict"].keys()
    if not torch.cuda.is_available():  # auto is the CPU here: the same weights, bit for bit
        assert all(torch.equal(v, two["state_dict"][k]) for k, v in one["state_dict"].items())


@pytest.mark.gpu
@needs_gpu
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("fmt", ["weights", "torchscript", "onnx"])
def test_export_recalibrated_on_cuda_matches_the_cpu_and_is_written_from_the_cpu(
    digits_checkpoint: tuple[Path, SearchSpace], tmp_path: Path, fmt: str
) -> None:
    from workers.pipeline.job import DataRef
    from workers.pipeline.work.export import recalibrated_subnet, write_export

    path, space = digits_checkpoint
    ref = DataRef("digits", 0)
    arch = space.canonical({**space.max_arch(), "resolution": 12})
    cpu, example, _ = recalibrated_subnet(path, ref, arch, 3, "cpu")
    gpu, example_gpu, _ = recalibrated_subnet(path, ref, arch, 3, "cuda")
    # Back on the CPU, statistics within float tolerance of the CPU's (cuDNN may use TF32).
    assert all(t.device.type == "cpu" for t in gpu.state_dict().values())
    assert torch.equal(example, example_gpu)
    want, got = _state(cpu), _state(gpu)
    for k, v in want.items():
        if v.is_floating_point():
            assert torch.allclose(got[k], v, rtol=1e-2, atol=1e-3), k
    with torch.no_grad():
        a, b = cpu(example), gpu(example)
    assert float((a - b).abs().max()) <= 1e-2 * max(1.0, float(a.abs().max()))
    # The file: parity checked on the CPU (write_export raises otherwise).
    suffix = {"weights": ".pt", "torchscript": ".ts.pt", "onnx": ".onnx"}[fmt]
    res = write_export(path, ref, arch, fmt, tmp_path / f"sub{suffix}", 3, {"k": 1}, "cuda")
    assert res.path.is_file() and res.size > 0


@pytest.mark.gpu
@needs_gpu
def test_a_supernet_on_cuda_exports_from_a_cpu_copy(mbv3, tmp_path: Path) -> None:
    import copy

    space, net, arch = mbv3
    on_gpu = copy.deepcopy(net).cuda()
    res = export_subnet(on_gpu, space, arch, "weights", tmp_path, torch.randn(3, 1, 12, 12))
    assert res.max_abs_diff <= 1e-5
    assert all(p.device.type == "cuda" for p in on_gpu.parameters())  # left where it was
    payload = torch.load(res.path, weights_only=True)
    assert all(t.device.type == "cpu" for t in payload["state_dict"].values())
