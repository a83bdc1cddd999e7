"""What a downloaded subnet does to the user's raw inputs before the network sees them.

Training reads each dataset through its reader (``nas_service.catalog.datasets``): raw values in
the file's layout are scaled (uint8 pixels by 255, digits' 0..16 by 16), normalised with the
training split's per-channel (or per-feature) mean and std, then brought to the shape the arch
consumes (images resized bilinearly to its resolution; tables and flattened images as vectors).
An export carries those steps (``preprocessing`` in its metadata) and, in TorchScript and ONNX,
as part of the graph, so the file takes exactly what the user's file holds.

``preprocessing`` is JSON: ``{"layout": "NCHW" | "NHWC" | "NHW" | "ND", "dtype": "uint8",
"scale": 255.0, "mean": [...], "std": [...]}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LAYOUTS = ("NCHW", "NHWC", "NHW", "ND")


class Preprocess(nn.Module):
    """Raw batch in ``layout`` -> the normalised batch of shape ``(N, *target_shape)``."""

    def __init__(self, spec: Mapping[str, Any], target_shape: Sequence[int]):
        super().__init__()
        layout = str(spec["layout"])
        if layout not in LAYOUTS:
            raise ValueError(f"preprocessing layout {layout!r}; allowed: {list(LAYOUTS)}")
        self.layout = layout
        self.scale = float(spec["scale"])
        mean = torch.tensor(spec["mean"], dtype=torch.float32)
        std = torch.tensor(spec["std"], dtype=torch.float32)
        view = (1, -1) if layout == "ND" else (1, -1, 1, 1)
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", mean.reshape(view))
        self.register_buffer("std", std.reshape(view))
        self.target = tuple(int(s) for s in target_shape)
        self.flatten = len(self.target) == 1 and layout != "ND"

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Raw -> normalised, in the training data's shape (N, C, H, W) or (N, D)."""
        x = x.to(torch.float32)
        if self.layout == "NHW":
            x = x.unsqueeze(1)
        elif self.layout == "NHWC":
            x = x.permute(0, 3, 1, 2)
        return (x / self.scale - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalise(x)
        if self.flatten:
            return x.flatten(1)
        if len(self.target) == 3 and tuple(x.shape[2:]) != self.target[1:]:
            x = F.interpolate(x, size=self.target[1:], mode="bilinear", align_corners=False)
        return x


class WithPreprocessing(nn.Module):
    """A subnet that takes raw inputs: ``preprocess`` then ``net``."""

    def __init__(self, preprocess: Preprocess, net: nn.Module):
        super().__init__()
        self.preprocess = preprocess
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(self.preprocess(x))
        return out


def with_preprocessing(
    net: nn.Module, spec: Mapping[str, Any], target_shape: Sequence[int]
) -> WithPreprocessing:
    """``net`` (a static subnet consuming ``target_shape``) taking raw inputs as ``spec`` says."""
    return WithPreprocessing(Preprocess(spec, target_shape), net).eval()


def to_raw(x: torch.Tensor, spec: Mapping[str, Any]) -> torch.Tensor:
    """The raw batch (layout and dtype of the user's file) whose normalisation is ``x``, a
    normalised batch of the training data's shape: the inverse of ``Preprocess.normalise``,
    rounded and clipped to the dtype's range for integer data."""
    layout = str(spec["layout"])
    mean = torch.tensor(spec["mean"], dtype=torch.float32)
    std = torch.tensor(spec["std"], dtype=torch.float32)
    view = (1, -1) if layout == "ND" else (1, -1, 1, 1)
    raw = (x * std.reshape(view) + mean.reshape(view)) * float(spec["scale"])
    if layout == "NHW":
        raw = raw[:, 0]
    elif layout == "NHWC":
        raw = raw.permute(0, 2, 3, 1)
    dtype = np.dtype(str(spec.get("dtype", "float32")))
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        raw = raw.round().clamp(float(info.min), float(info.max))
    return torch.from_numpy(raw.contiguous().numpy().astype(dtype))


def load_subnet(path: str, *, raw_inputs: bool = True) -> nn.Module:
    """A downloaded weights file (``--format weights``) as an eval-mode module. With
    ``raw_inputs`` (default) it takes the user's raw samples, as the TorchScript and ONNX files
    do; otherwise the normalised batch of the arch's input shape."""
    from search_spaces.nn import build_static
    from search_spaces.registry import get_space

    blob = torch.load(path, weights_only=True)
    net = build_static(blob["space"], blob["arch"])
    net.load_state_dict(blob["state_dict"])
    net.eval()
    spec = blob.get("metadata", {}).get("preprocessing")
    if not raw_inputs or spec is None:
        return net
    space = get_space(**blob["space"])
    return with_preprocessing(net, spec, space.input_shape(blob["arch"]))
