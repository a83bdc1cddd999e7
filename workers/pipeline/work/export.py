"""Exporting one subnet of a trained supernet: BN recalibrated on the job's seeded training
subset (what users download), taking the user's raw samples (the dataset's preprocessing is
part of the file), checked against the subnet's own output, written atomically.

``device`` follows the trainer's rule (``workers.devices.resolve_device``; ``auto``, the
default, is CUDA when the worker process sees a GPU): the recalibration runs there, on the
extracted subnet; the files are written, and their parity checked, from a CPU copy of it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workers.pipeline.engine import unit
from workers.pipeline.job import DataRef
from workers.pipeline.records import ExportResult
from workers.pipeline.work.cache import worker_cache
from workers.pipeline.work.evaluation import BN_BATCH, bn_subset
from workers.pipeline.work.loading import load_data, load_net


def recalibrated_subnet(
    checkpoint: Path | str,
    data: DataRef,
    arch: Mapping[str, int],
    seed: int,
    device: str = "auto",
) -> tuple[Any, Any, Any]:
    """The static subnet of ``arch`` with BN statistics re-estimated on a seeded subset of the
    training split (what users download), a validation batch shaped for it, and that batch as
    the user's raw samples (None when the dataset does not say how its raw samples look).
    The recalibration runs on ``device``; the subnet and the batches come back on the CPU."""
    from search_spaces.nn.preprocess import Preprocess, to_raw
    from workers.bn import calibration_batches, recalibrate_bn
    from workers.devices import resolve_device

    dev = resolve_device(device)
    space, net = load_net(checkpoint)
    x_bn = bn_subset(data, seed)
    splits = load_data(data)
    x_val, _ = splits.tensors("val")
    spec = splits.info.get("preprocessing")
    raw = None
    batch = x_val[:4]
    if spec is not None:
        # The raw samples (integers rounded), and exactly what training-time loading makes of them.
        raw = to_raw(batch, spec)
        batch = Preprocess(spec, batch.shape[1:]).normalise(raw)
    canon = space.canonical(arch)
    with worker_cache().lock:
        net.set_active(canon)
        batches = [net.prepare_input(b) for b in calibration_batches(x_bn, BN_BATCH)]
        example = net.prepare_input(batch)
        sub = net.extract(canon)
    # The subnet's own copy of the weights: moving it leaves the cached supernet alone.
    recalibrate_bn(sub.to(dev), batches, device=dev)
    return sub.cpu().eval(), example.cpu(), raw


@unit(retries=1, gpu=True)
def write_export(
    checkpoint: Path | str,
    data: DataRef,
    arch: Mapping[str, int],
    fmt: str,
    dest: Path,
    seed: int,
    metadata: Mapping[str, Any] | None = None,
    device: str = "auto",
) -> ExportResult:
    """Export the BN-recalibrated subnet to ``dest`` (written to a temp file, checked against
    the subnet's own output, renamed) with ``metadata`` inside the file. ``device``: where the
    recalibration runs (the file is written from a CPU copy)."""
    from workers.export import export_subnet, extension

    space, _ = load_net(checkpoint)
    sub, example, raw = recalibrated_subnet(checkpoint, data, arch, seed, device)
    spec = load_data(data).info.get("preprocessing") if raw is not None else None
    stem = dest.name.split(".")[0]
    res = export_subnet(
        sub,
        space,
        arch,
        fmt,
        dest.parent,
        example,
        name=stem,
        metadata=metadata,
        preprocessing=spec,
        raw_input=raw,
    )
    assert res.path.name == f"{stem}{extension(fmt)}"
    return ExportResult(Path(res.path), str(res.sha256), int(res.size))
