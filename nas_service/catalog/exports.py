"""Export formats: how a subnet is downloaded. Each names its artifact kind, file suffix, media
type and the largest difference from the supernet's output its parity check accepts."""

from __future__ import annotations

from nas_service.catalog.registry import CATALOG, Entry

KIND = "export"


def export_format(
    name: str, summary: str, *, artifact_kind: str, suffix: str, media_type: str, tolerance: float
) -> Entry:
    return Entry(
        KIND,
        name,
        summary,
        impl=f"workers.export:write_{name}",
        info={
            "artifact_kind": artifact_kind,
            "suffix": suffix,
            "media_type": media_type,
            "tolerance": tolerance,
        },
    )


ENTRIES = [
    export_format(
        "weights",
        "state dict + arch JSON + metadata (torch.load(..., weights_only=True), then build_static)",
        artifact_kind="subnet_weights",
        suffix="pt",
        media_type="application/octet-stream",
        tolerance=1e-5,
    ),
    export_format(
        "torchscript",
        "traced TorchScript module (torch.jit.load); metadata.json as an extra file",
        artifact_kind="subnet_torchscript",
        suffix="ts.pt",
        media_type="application/octet-stream",
        tolerance=1e-5,
    ),
    export_format(
        "onnx",
        "ONNX graph with a dynamic batch axis (onnxruntime); metadata in metadata_props",
        artifact_kind="subnet_onnx",
        suffix="onnx",
        media_type="application/octet-stream",
        tolerance=1e-4,
    ),
]


def names() -> list[str]:
    return CATALOG.names(KIND)


def artifact_kind(fmt: str) -> str:
    return str(CATALOG.get(KIND, fmt).info["artifact_kind"])


def suffix(fmt: str) -> str:
    return str(CATALOG.get(KIND, fmt).info["suffix"])


def artifact_kinds() -> list[str]:
    return [str(e.info["artifact_kind"]) for e in CATALOG.entries(KIND)]


def format_of_kind(kind: str) -> str:
    """The download format whose artifacts are of ``kind``."""
    for e in CATALOG.entries(KIND):
        if e.info["artifact_kind"] == kind:
            return e.name
    raise LookupError(f"no export format writes artifacts of kind {kind!r}")
