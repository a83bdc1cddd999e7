"""Device runtimes: how a registered device runs a network while its latency is measured."""

from __future__ import annotations

from nas_service.catalog.registry import CATALOG, Entry

KIND = "device_runtime"

ENTRIES = [
    Entry(KIND, "eager", "the PyTorch module as it is, eager mode"),
    Entry(
        KIND,
        "torchscript",
        "the exported network traced and frozen for inference (what a TorchScript download runs)",
    ),
]


def names() -> list[str]:
    return CATALOG.names(KIND)
