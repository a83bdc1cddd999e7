"""The options models of the datasets' loaders (``dataset.options``), checked at submission.

A job's ``dataset.options`` reach the worker's loader as keyword arguments. Checked here, a
misspelt option or an impossible split is refused with the field and the reason before anything
is queued, instead of failing the job after it was claimed. Only the options a user gives are
checked; the loaders apply the defaults (``val_fraction`` 0.15 and ``test_fraction`` 0.2), which
the split rule counts for an option left out.

The file of an uploaded dataset is chosen by the service, never by an option.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, model_validator

# At most this many input values in a synthetic dataset (n times the size of one sample):
# 50 M float32 values, 200 MB.
MAX_SYNTHETIC_VALUES = 50_000_000
# The loaders' defaults (the service may not import the workers; a test keeps them equal).
SYNTHETIC_DEFAULT_N = 600
DEFAULT_VAL_FRACTION = 0.15
DEFAULT_TEST_FRACTION = 0.2


class SplitOptions(BaseModel):
    """What every loader takes: the shares of the images held out for validation and test."""

    model_config = ConfigDict(extra="forbid")

    # The validation split scores every subnet: it cannot be empty.
    val_fraction: float | None = Field(default=None, gt=0, lt=0.9)
    test_fraction: float | None = Field(default=None, ge=0, lt=0.9)

    @model_validator(mode="after")
    def _leaves_training_data(self) -> SplitOptions:
        val = DEFAULT_VAL_FRACTION if self.val_fraction is None else self.val_fraction
        test = DEFAULT_TEST_FRACTION if self.test_fraction is None else self.test_fraction
        if val + test >= 0.9:
            raise ValueError(
                f"val_fraction + test_fraction is {val + test:g}: together they must stay "
                "below 0.9 so that the supernet has training data"
            )
        return self


class SyntheticOptions(SplitOptions):
    n: int | None = Field(default=None, ge=8, le=1_000_000)
    shape: list[int] | None = Field(default=None, min_length=1, max_length=3)
    classes: int | None = Field(default=None, ge=2, le=1000)
    noise: float | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _sane_size(self) -> SyntheticOptions:
        if self.shape is not None:
            if len(self.shape) == 2 or any(not 1 <= s <= 1024 for s in self.shape):
                raise ValueError(
                    f"shape {self.shape} must be [D] or [C, H, W] with sides in 1..1024"
                )
            values = (self.n or SYNTHETIC_DEFAULT_N) * math.prod(self.shape)
            if values > MAX_SYNTHETIC_VALUES:
                raise ValueError(
                    f"n x shape is {values:,} values; at most {MAX_SYNTHETIC_VALUES:,} are allowed"
                )
        return self


class ImageFolderOptions(SplitOptions):
    size: int | list[int] | None = None
    grayscale: bool | None = None

    @model_validator(mode="after")
    def _sane_image_size(self) -> ImageFolderOptions:
        size = self.size
        sides = [size] if isinstance(size, int) else size
        if sides is not None and (
            len(sides) not in (1, 2) or any(not 4 <= s <= 512 for s in sides)
        ):
            raise ValueError(f"size {size} must be one side or [height, width], each in 4..512")
        return self
