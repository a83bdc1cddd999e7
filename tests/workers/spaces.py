"""Small spaces the worker tests build supernets of."""

from __future__ import annotations

from typing import Any

# A tiny small-input MobileNetV3: 1 input channel, 4 classes, two resolutions, every elastic
# dimension with two choices.
TINY_MBV3: dict[str, Any] = {
    "small_input": True,
    "width_mult": 0.25,
    "num_classes": 4,
    "in_channels": 1,
    "resolutions": [8, 12],
    "kernels": [3, 5],
    "expands": [2, 3],
    "depths": [1, 2],
}
