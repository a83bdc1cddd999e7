"""The one rule for which torch device a worker computes on, shared by training, subnet
evaluation (BN recalibration and scoring) and export (BN recalibration).

- :func:`resolve_device`: ``"auto"`` is CUDA when this process sees a GPU (under Ray, the GPU
  the task was given: Ray sets ``CUDA_VISIBLE_DEVICES``), else the CPU; ``"cpu"``; ``"cuda"``
  or ``"cuda:i"``, an error that says so when this process sees no GPU or fewer than ``i + 1``.
- :func:`to_device`: a tensor on the chosen device, copied from pinned memory without blocking
  the host on CUDA.

Plain ``torch`` only: this module is imported by code that runs where the service's other
packages (pydantic, Ray) are not installed, such as the GPU benchmark.
"""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:<index>")


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The torch device for ``name``: ``auto`` (or None) picks CUDA when available, else the
    CPU; ``cpu``; ``cuda[:i]``, which must exist in this process."""
    text = "auto" if name is None else str(name)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ValueError(
            f"unknown device {text!r}; use one of {', '.join(DEVICE_CHOICES)}"
        ) from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(f"unsupported device {text!r}; use one of {', '.join(DEVICE_CHOICES)}")
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"device '{text}' asked for, but this process sees no CUDA GPU "
            "(torch.cuda.is_available() is False); use 'auto' or 'cpu'"
        )
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise RuntimeError(
            f"device '{text}' asked for, but this process sees {count} CUDA GPU(s) "
            f"(cuda:0..cuda:{count - 1}); use 'auto' or one of those"
        )
    return device


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` on ``device``; pinned and copied without blocking the host on CUDA (an already
    pinned tensor is not copied again on the host)."""
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        src = t if t.is_pinned() else t.pin_memory()
        return src.to(device, non_blocking=True)
    return t.to(device)
