"""Export a subnet as weights + arch JSON, TorchScript or ONNX, checked against the supernet.

Every artifact is written to a temporary file in the target folder, loaded back the way a user
would load it, compared with the supernet's own eval-mode output for the same arch, and only
then renamed into place; its sha256 and size are returned for the artifacts table.

Exports are written and checked on the CPU, whatever device the subnet was recalibrated on: a
module (or supernet) on another device is copied to the CPU first (the caller's stays where it
is), and the parity reference is that copy's output, so a file never carries CUDA tensors and
its check does not mix CUDA and CPU kernels.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from nas_service.catalog import CATALOG, exports, resolve
from search_spaces.base import Arch, SearchSpace
from search_spaces.nn import Supernet, load_subnet
from search_spaces.nn.preprocess import WithPreprocessing, with_preprocessing

ONNX_EXPORTERS = ("auto", "dynamo", "torchscript")
# A writer saves the static subnet to ``tmp``, loads it back as a user would and returns the
# largest difference of its output from ``reference`` on ``x``. Export formats are catalog
# entries (``nas_service.catalog.exports``) naming their writer, suffix and tolerance.
Writer = Callable[..., float]


def extension(fmt: str) -> str:
    """The file name ending of an export format, with its dot (".ts.pt")."""
    return "." + exports.suffix(fmt)


class ExportParityError(RuntimeError):
    """The exported artifact does not reproduce the supernet's output."""


@dataclass(frozen=True)
class ExportResult:
    fmt: str
    path: Path
    sha256: str
    size: int
    max_abs_diff: float
    arch: Arch


def export_subnet(
    supernet_or_module: Supernet | nn.Module,
    space: SearchSpace,
    arch: Mapping[str, int],
    fmt: str,
    out_dir: Path | str,
    example_input: torch.Tensor | None = None,
    *,
    name: str | None = None,
    onnx_exporter: str = "auto",
    metadata: Mapping[str, Any] | None = None,
    preprocessing: Mapping[str, Any] | None = None,
    raw_input: torch.Tensor | None = None,
) -> ExportResult:
    """Write the subnet ``arch`` in format ``fmt`` (weights | torchscript | onnx) to ``out_dir``.

    ``supernet_or_module`` is the trained supernet (the subnet is extracted and its output is the
    reference) or an already extracted static subnet of ``arch``. ``example_input`` is a batch
    for the parity check (a supernet resizes it with ``prepare_input``); by default a seeded
    random batch of the arch's input shape. ``onnx_exporter`` picks torch's export-based ONNX
    exporter ("dynamo") or the TorchScript-based one ("torchscript"); "auto" (default) tries the
    TorchScript-based one first, because it takes about a second where the export-based one
    takes 15-30 s on a CPU for these nets, and falls back to "dynamo" if it fails.

    ``metadata`` (JSON values: accuracies labelled by split, latency, MACs) travels inside the
    file: the weights file's ``metadata`` entry, TorchScript's ``metadata.json`` extra file,
    ONNX's ``metadata_props`` (key ``nas_metadata``), so a downloaded subnet says what it scored.

    ``supernet_or_module`` may live on any device: the export works on a CPU copy of it.

    ``preprocessing`` (``search_spaces.nn.preprocess``: the raw layout, dtype, scale, mean and
    std of the job's data) with ``raw_input``, the raw samples whose preprocessing is
    ``example_input``: the TorchScript and ONNX graphs then take raw samples (the preprocessing
    is part of them), the weights file carries it in its metadata, and the parity check feeds
    ``raw_input`` to the exported file against the supernet's output on ``example_input``.
    """
    if fmt not in exports.names():
        raise ValueError(f"unknown export format fmt={fmt!r}; allowed: {exports.names()}")
    if onnx_exporter not in ONNX_EXPORTERS:
        raise ValueError(
            f"unknown onnx_exporter={onnx_exporter!r}; allowed: {list(ONNX_EXPORTERS)}"
        )
    canon = space.canonical(arch)
    source = on_cpu(supernet_or_module)
    if example_input is not None:
        example_input = example_input.cpu()
    if raw_input is not None:
        raw_input = raw_input.cpu()
    x, reference, static = _reference(source, space, canon, example_input)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = name or f"{space.id}-{_arch_digest(space, canon)}"
    final = out / f"{stem}{extension(fmt)}"
    tmp = out / f".{stem}.{uuid.uuid4().hex}.tmp"
    meta = json.loads(json.dumps(dict(metadata or {})))  # plain JSON values, or fail here
    module: nn.Module = static
    if preprocessing is not None:
        if raw_input is None:
            raise ValueError("preprocessing needs raw_input: the raw samples of example_input")
        module = with_preprocessing(static, preprocessing, space.input_shape(canon))
        meta["preprocessing"] = {
            **json.loads(json.dumps(dict(preprocessing))),
            "input_shape": [int(s) for s in raw_input.shape[1:]],
        }
        x = raw_input if raw_input.shape[0] == reference.shape[0] else torch.cat([raw_input] * 2)
    entry = CATALOG.get(exports.KIND, fmt)
    writer: Writer = resolve(entry)
    tolerance = float(entry.info["tolerance"])
    try:
        diff = writer(module, space, canon, tmp, x, reference, meta, onnx_exporter=onnx_exporter)
        if not diff <= tolerance:
            raise ExportParityError(
                f"{fmt} export of {space.short(canon)} differs from the supernet by {diff:.3g} "
                f"(max abs), tolerance {tolerance:g}"
            )
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(fmt, final, _sha256(final), final.stat().st_size, diff, canon)


M = TypeVar("M", bound=nn.Module)


def on_cpu(module: M) -> M:
    """``module`` itself when all its tensors are on the CPU, else a CPU copy of it (the
    original is left on its device)."""
    tensors = [*module.parameters(), *module.buffers()]
    if all(t.device.type == "cpu" for t in tensors):
        return module
    return copy.deepcopy(module).cpu()


def _arch_digest(space: SearchSpace, arch: Arch) -> str:
    genes = ",".join(map(str, space.encode(arch)))
    return hashlib.sha256(genes.encode()).hexdigest()[:12]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


@torch.no_grad()
def _reference(
    source: nn.Module, space: SearchSpace, arch: Arch, example: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, nn.Module]:
    """(input batch, reference output, static eval-mode subnet)."""
    if example is None:
        g = torch.Generator().manual_seed(0)
        example = torch.randn(2, *space.input_shape(arch), generator=g)
    if isinstance(source, Supernet):
        previous = source.active
        source.set_active(arch)
        try:
            x = source.prepare_input(example)
            with _eval_mode(source):
                reference = source(x)
        finally:
            source.set_active(previous)
        static = source.extract(arch).eval()
    else:
        x = example
        static = source.eval()
        reference = static(x)
    if x.shape[0] < 2:
        # A batch of one lets exporters specialise the batch axis; check with two.
        x = torch.cat([x, x])
        reference = torch.cat([reference, reference])
    return x, reference, static


def _max_diff(a: torch.Tensor | np.ndarray, b: torch.Tensor) -> float:
    a_t = torch.as_tensor(a)
    if a_t.shape != b.shape:
        return float("inf")
    return float((a_t - b).abs().max())


@torch.no_grad()
def write_weights(
    static: nn.Module,
    space: SearchSpace,
    arch: Arch,
    tmp: Path,
    x: torch.Tensor,
    reference: torch.Tensor,
    metadata: dict[str, Any],
    **_: Any,
) -> float:
    # The bare subnet's weights (build_static's keys); its preprocessing is in the metadata.
    bare = static.net if isinstance(static, WithPreprocessing) else static
    payload: dict[str, Any] = {
        "arch": dict(arch),
        "space": space.spec(),
        "state_dict": {k: v.detach().clone() for k, v in bare.state_dict().items()},
        "metadata": metadata,
    }
    torch.save(payload, tmp)
    rebuilt = load_subnet(str(tmp), raw_inputs=isinstance(static, WithPreprocessing))
    return _max_diff(rebuilt(x), reference)


@torch.no_grad()
def write_torchscript(
    static: nn.Module,
    space: SearchSpace,
    arch: Arch,
    tmp: Path,
    x: torch.Tensor,
    reference: torch.Tensor,
    metadata: dict[str, Any],
    **_: Any,
) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(static, x, check_trace=False)
        torch.jit.save(traced, str(tmp), _extra_files={"metadata.json": json.dumps(metadata)})
        loaded = torch.jit.load(str(tmp))
    loaded.eval()
    return _max_diff(loaded(x), reference)


def write_onnx(
    static: nn.Module,
    space: SearchSpace,
    arch: Arch,
    tmp: Path,
    x: torch.Tensor,
    reference: torch.Tensor,
    metadata: dict[str, Any],
    *,
    onnx_exporter: str = "auto",
    **_: Any,
) -> float:
    import onnx
    import onnxruntime as ort

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        if onnx_exporter == "auto":
            try:
                _onnx_export(static, tmp, x, "torchscript")
            except Exception:
                tmp.unlink(missing_ok=True)
                _onnx_export(static, tmp, x, "dynamo")
        else:
            _onnx_export(static, tmp, x, onnx_exporter)
    if metadata:
        model = onnx.load(str(tmp))
        prop = model.metadata_props.add()
        prop.key, prop.value = "nas_metadata", json.dumps(metadata)
        onnx.save(model, str(tmp))
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    (out,) = session.run(["logits"], {"input": x.numpy()})
    # The batch axis must really be dynamic: run a batch of a different size too.
    (one,) = session.run(["logits"], {"input": x[:1].numpy()})
    return max(_max_diff(out, reference), _max_diff(one, reference[:1]))


def _onnx_export(static: nn.Module, tmp: Path, x: torch.Tensor, exporter: str) -> None:
    with torch.no_grad():
        if exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=65536)
            torch.onnx.export(
                static,
                (x,),
                str(tmp),
                dynamo=True,
                external_data=False,
                verbose=False,
                dynamic_shapes=({0: batch},),
                input_names=["input"],
                output_names=["logits"],
            )
        else:
            torch.onnx.export(
                static,
                (x,),
                str(tmp),
                dynamo=False,
                verbose=False,
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                input_names=["input"],
                output_names=["logits"],
            )
