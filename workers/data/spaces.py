"""Match a search space to a dataset: input channels or features, classes, resolutions."""

from __future__ import annotations

import math
from typing import Any

from workers.data.base import DatasetError, DatasetSplits

# Below this side length the stem and the first stages must not downsample as much as they
# would on ImageNet-sized inputs, or an 8x8 digit is reduced to a single pixel at once.
SMALL_INPUT_SIDE = 64


def space_options_for(space_id: str, data: DatasetSplits) -> dict[str, Any]:
    """Options for ``get_space(space_id, **options)`` so that the space fits ``data``."""
    shape = data.input_shape
    if space_id == "mlp":
        return {"in_features": int(math.prod(shape)), "num_classes": data.num_classes}
    if space_id == "mbv3":
        if len(shape) != 3:
            raise DatasetError(
                f"space 'mbv3' needs image data (C, H, W); dataset '{data.name}' has samples of "
                f"shape {list(shape)} (use the 'mlp' space for tabular data)"
            )
        c, h, w = shape
        side = min(h, w)
        if side <= 16:
            resolutions: tuple[int, ...] = (side,)
        else:
            # Elastic resolution: the native size and two smaller steps of 4 pixels.
            resolutions = tuple(r for r in (side - 8, side - 4, side) if r >= 8)
        return {
            "in_channels": int(c),
            "num_classes": data.num_classes,
            "small_input": side < SMALL_INPUT_SIDE,
            "resolutions": resolutions,
        }
    raise DatasetError(f"no dataset mapping for space '{space_id}'; known: ['mbv3', 'mlp']")
