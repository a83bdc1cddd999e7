"""An uploaded ``.npz``: arrays ``x`` (N, D), (N, H, W) or (N, C, H, W) and labels ``y`` (N,);
optional ``x_test`` / ``y_test`` become the test split as given."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nas_service.catalog.datasets.base import (
    Arrays,
    DatasetError,
    SplitOptions,
    UploadLimits,
    check_arrays,
    check_zip,
    dataset_entry,
    encode_labels,
    image_layout,
    to_float_samples,
)
from search_spaces import DataShape


def shape(options: Mapping[str, Any], info: Mapping[str, Any]) -> DataShape | None:
    if "input_shape" not in info or "num_classes" not in info:
        return None  # stored before the service kept shapes: the runner decides
    return DataShape.of(info["input_shape"], int(info["num_classes"]))


# ----- the upload check (service) -------------------------------------------------------------
def inspect(path: Path, limits: UploadLimits) -> dict[str, Any]:
    """Arrays ``x`` and integer labels ``y`` 0..K-1 with every class present; optional
    ``x_test``/``y_test`` with the same sample shape. Returns the stored info."""
    try:
        with zipfile.ZipFile(path) as zf:
            check_zip(zf, limits, "npz")
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except DatasetError:
        raise
    except Exception as exc:  # numpy raises several types for malformed files
        raise DatasetError(f"not a readable .npz file ({type(exc).__name__}: {exc})") from exc
    for key in ("x", "y"):
        if key not in arrays:
            raise DatasetError(f"npz: missing array '{key}'; found {sorted(arrays)}")
    for key, value in arrays.items():
        # NpzFile hands back raw bytes for a member that is not a valid .npy array.
        if not isinstance(value, np.ndarray):
            raise DatasetError(f"not a readable .npz file: member '{key}' is not a .npy array")
    x, y = arrays["x"], arrays["y"]
    info = _check_xy(x, y, "x", "y")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DatasetError("npz: x_test and y_test must be given together")
    if "x_test" in arrays:
        xt, yt = arrays["x_test"], arrays["y_test"]
        test = _check_xy(xt, yt, "x_test", "y_test", need_all_classes=False)
        if xt.shape[1:] != x.shape[1:]:
            raise DatasetError(
                f"npz: x_test samples are {xt.shape[1:]} but x samples are {x.shape[1:]}"
            )
        if test["max_label"] >= info["num_classes"]:
            raise DatasetError(
                f"npz: y_test has label {test['max_label']} but y has {info['num_classes']} classes"
            )
        info["num_test_samples"] = test["num_samples"]
    info.pop("max_label")
    return info


def _check_xy(
    x: np.ndarray, y: np.ndarray, xn: str, yn: str, need_all_classes: bool = True
) -> dict[str, Any]:
    if x.ndim not in (2, 3, 4):
        raise DatasetError(
            f"npz: {xn} has shape {list(x.shape)}; expected (N, D), (N, H, W), (N, C, H, W) or "
            "(N, H, W, C)"
        )
    if not (np.issubdtype(x.dtype, np.number) and not np.issubdtype(x.dtype, np.complexfloating)):
        raise DatasetError(f"npz: {xn} must hold real numbers, found dtype {x.dtype}")
    if y.ndim != 1:
        raise DatasetError(f"npz: {yn} must be 1-D class labels, found shape {list(y.shape)}")
    if len(y) != len(x):
        raise DatasetError(f"npz: {len(x)} samples in {xn} but {len(y)} labels in {yn}")
    if len(x) == 0:
        raise DatasetError(f"npz: {xn} is empty")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise DatasetError(f"npz: {xn} holds {int((~np.isfinite(x)).sum())} NaN or infinite values")
    integral = np.issubdtype(y.dtype, np.floating) and bool(np.all(np.mod(y, 1) == 0))
    if not np.issubdtype(y.dtype, np.integer) and not integral:
        raise DatasetError(f"npz: {yn} must hold integer class labels, found dtype {y.dtype}")
    labels = y.astype(np.int64)
    if labels.min() < 0:
        raise DatasetError(f"npz: {yn} has negative label {int(labels.min())}; labels are 0..K-1")
    counts = np.bincount(labels)
    missing = [int(c) for c in np.flatnonzero(counts == 0)]
    if need_all_classes and missing:
        raise DatasetError(
            f"npz: labels must be 0..K-1 with every class present; no sample for {missing[:10]}"
        )
    if need_all_classes and len(counts) < 2:
        raise DatasetError(f"npz: {len(counts)} class found; at least 2 are needed")
    try:
        layout = image_layout(tuple(x.shape), f"npz: {xn}")
    except DatasetError as exc:
        raise DatasetError(exc.reason) from None
    dims = [int(d) for d in x.shape[1:]]
    if layout == "NHW":
        shape = [1, *dims]
    elif layout == "NHWC":
        shape = [dims[2], dims[0], dims[1]]
    else:
        shape = dims
    info: dict[str, Any] = {
        "num_samples": len(x),
        "layout": layout,
        "input_shape": shape,
        "num_classes": len(counts),
        "class_counts": [int(c) for c in counts],
        "dtype": str(x.dtype),
        "max_label": int(labels.max()),
    }
    if x.ndim == 2:
        info["in_features"] = int(x.shape[1])
    else:
        info["in_channels"] = shape[0]
    return info


# ----- the reader (workers) -------------------------------------------------------------------
def read(*, seed: int = 0, path: str | Path | None = None) -> Arrays:
    if path is None:
        raise DatasetError("npz: the option 'path' (a .npz file with arrays x and y) is required")
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: file not found")
    try:
        with np.load(p, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{p}: not a readable .npz file ({exc})") from exc
    for key in ("x", "y"):
        if key not in arrays:
            raise DatasetError(f"{p}: missing key '{key}'; found keys {sorted(arrays)}")
    x, raw = to_float_samples(arrays["x"], str(p))
    y_raw = arrays["y"]
    test: tuple[np.ndarray, np.ndarray] | None = None
    if "x_test" in arrays or "y_test" in arrays:
        if "x_test" not in arrays or "y_test" not in arrays:
            raise DatasetError(f"{p}: x_test and y_test must be given together")
        xt, _ = to_float_samples(arrays["x_test"], f"{p} (x_test)")
        if xt.shape[1:] != x.shape[1:]:
            raise DatasetError(
                f"{p}: shape mismatch: x samples are {x.shape[1:]} but x_test samples are "
                f"{xt.shape[1:]}"
            )
        # Encode train and test labels together so both use the same class indices.
        joint, classes = encode_labels(np.concatenate([y_raw, arrays["y_test"]]), str(p))
        y, yt = joint[: len(y_raw)], joint[len(y_raw) :]
        check_arrays(xt, yt, f"{p} (test)", min_classes=1)
        test = (xt, yt)
    else:
        y, classes = encode_labels(y_raw, str(p))
    check_arrays(x, y, str(p))
    info = {"path": str(p), "classes": classes}
    return Arrays(f"npz:{p.name}", x, y, raw, test=test, info=info)


ENTRY = dataset_entry(
    "npz",
    "an uploaded .npz with arrays x (N, D) or (N, C, H, W) and y (N,) class labels",
    SplitOptions,
    f"{__name__}:read",
    shape,
    builtin=False,
    file_option="path",
    suffix=".npz",
    inspect=inspect,
)
