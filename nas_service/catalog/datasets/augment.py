"""The image augmentation a job's training may ask for (``training.augment``): torch-free, so the
service validates it and the workers (``workers.data.pipeline``) apply it per batch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AugmentOptions(BaseModel):
    """``crop``: ``pad`` (random crop of the image padded by ``padding`` pixels, the CIFAR
    recipe), ``resized`` (random-resized-crop: a box of ``scale`` of the area and ``ratio``
    aspect, resized back to the image size) or ``none``; ``flip``: random horizontal flips.
    Applied to training batches only, seeded per (seed, epoch, step, rank)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    crop: Literal["pad", "resized", "none"] = "pad"
    padding: int = Field(default=4, ge=0, le=64)
    scale: tuple[float, float] = (0.35, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True

    @model_validator(mode="after")
    def _ranges(self) -> AugmentOptions:
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"scale {list(self.scale)} must satisfy 0 < low <= high <= 1")
        lo, hi = self.ratio
        if not 0 < lo <= hi:
            raise ValueError(f"ratio {list(self.ratio)} must satisfy 0 < low <= high")
        return self
