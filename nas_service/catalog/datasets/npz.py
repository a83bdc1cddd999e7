"""An uploaded ``.npz``: arrays ``x`` (N, D), (N, H, W), (N, C, H, W) or (N, H, W, C) and labels
``y`` (N,); optional ``x_test`` / ``y_test`` become the test split as given.

An upload is converted into the on-disk store (``store.py``) as it is checked, one chunk of
rows at a time (the arrays are never loaded whole): uint8 images stay uint8, channels first.
``read`` loads a local file in memory (the command-line tools and uploads stored before
conversion)."""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from nas_service.catalog.datasets.base import (
    Arrays,
    DatasetError,
    RawLayout,
    SplitOptions,
    check_arrays,
    check_zip,
    dataset_entry,
    encode_labels,
    image_layout,
    to_float_samples,
)
from nas_service.catalog.datasets.store import CHUNK_ROWS, ConvertContext, raw_to_store_rows
from search_spaces import DataShape


def shape(options: Mapping[str, Any], info: Mapping[str, Any]) -> DataShape | None:
    if "input_shape" not in info or "num_classes" not in info:
        return None  # stored before the service kept shapes: the runner decides
    return DataShape.of(info["input_shape"], int(info["num_classes"]))


# ----- the upload conversion (service) --------------------------------------------------------
def _npy_header(fh: IO[bytes], key: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    except ValueError as exc:
        raise DatasetError(f"not a readable .npz file: member '{key}' is not a .npy array") from exc
    if dtype.hasobject:
        raise DatasetError(f"npz: {key} holds Python objects; only numeric arrays are read")
    if fortran and len(shape) > 1:
        raise DatasetError(
            f"npz: {key} is Fortran-ordered; save it C-ordered (np.ascontiguousarray)"
        )
    return tuple(int(d) for d in shape), dtype


class _Member:
    """One ``.npy`` member of the archive, read chunk by chunk (never whole)."""

    def __init__(self, zf: zipfile.ZipFile, name: str, key: str):
        self.zf, self.name, self.key = zf, name, key
        with zf.open(name) as fh:
            self.shape, self.dtype = _npy_header(fh, key)

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
        row_items = math.prod(self.shape[1:])
        row_bytes = row_items * self.dtype.itemsize
        left = self.shape[0] if self.shape else 0
        with self.zf.open(self.name) as fh:
            _npy_header(fh, self.key)
            while left > 0:
                k = min(rows, left)
                buf = fh.read(k * row_bytes)
                if len(buf) != k * row_bytes:
                    raise DatasetError(
                        f"npz: {self.key} is truncated: the header promises {self.shape[0]} rows"
                    )
                yield np.frombuffer(buf, dtype=self.dtype).reshape(k, *self.shape[1:])
                left -= k

    def whole(self) -> np.ndarray:
        parts = list(self.chunks())
        return np.concatenate(parts) if parts else np.zeros(self.shape, self.dtype)


def convert(path: Path, ctx: ConvertContext) -> dict[str, Any]:
    """Check an ``.npz`` (arrays ``x`` and integer labels ``y`` 0..K-1 with every class
    present; optional ``x_test``/``y_test`` with the same sample shape) while writing it into
    the store chunk by chunk. Returns the stored info."""
    try:
        with zipfile.ZipFile(path) as zf:
            check_zip(zf, ctx.limits, "npz")
            return _convert(zf, ctx)
    except DatasetError:
        raise
    except Exception as exc:  # zipfile and numpy raise several types for malformed files
        raise DatasetError(f"not a readable .npz file ({type(exc).__name__}: {exc})") from exc


def _convert(zf: zipfile.ZipFile, ctx: ConvertContext) -> dict[str, Any]:
    names = {n[: -len(".npy")]: n for n in zf.namelist() if n.endswith(".npy")}
    for key in ("x", "y"):
        if key not in names:
            raise DatasetError(f"npz: missing array '{key}'; found {sorted(names)}")
    if ("x_test" in names) != ("y_test" in names):
        raise DatasetError("npz: x_test and y_test must be given together")
    x = _Member(zf, names["x"], "x")
    y = _Member(zf, names["y"], "y").whole()
    info = _check_xy(x.shape, x.dtype, y, "x", "y")
    parts = [(x, _labels(y), False)]
    if "x_test" in names:
        xt = _Member(zf, names["x_test"], "x_test")
        yt = _Member(zf, names["y_test"], "y_test").whole()
        test = _check_xy(xt.shape, xt.dtype, yt, "x_test", "y_test", need_all_classes=False)
        if xt.shape[1:] != x.shape[1:]:
            raise DatasetError(
                f"npz: x_test samples are {list(xt.shape[1:])} but x samples are "
                f"{list(x.shape[1:])}"
            )
        if test["max_label"] >= info["num_classes"]:
            raise DatasetError(
                f"npz: y_test has label {test['max_label']} but y has {info['num_classes']} classes"
            )
        info["num_test_samples"] = test["num_samples"]
        parts.append((xt, _labels(yt), True))
    info.pop("max_label")
    layout = str(info["layout"])
    store_dtype, scale = _store_dtype(parts)
    total = sum(len(lab) for _, lab, _ in parts)
    with ctx.writer(sample_shape=info["input_shape"], dtype=store_dtype, total=total) as w:
        for member, labels, is_test in parts:
            start = 0
            for chunk in member.chunks():
                if chunk.dtype.kind == "f" and not np.isfinite(chunk).all():
                    bad = int((~np.isfinite(chunk)).sum())
                    raise DatasetError(
                        f"npz: {member.key} holds NaN or infinite values ({bad} in rows "
                        f"{start}..{start + len(chunk) - 1})"
                    )
                rows = raw_to_store_rows(chunk, layout, store_dtype)
                if scale != 1.0:
                    rows = rows / np.float32(scale)
                w.put(rows, labels[start : start + len(chunk)], test=is_test)
                start += len(chunk)
        raw = RawLayout(layout, str(x.dtype), 255.0 if store_dtype == "uint8" else scale)
        w.finish(
            {
                "format": "npz",
                "name": "npz",
                "classes": list(range(int(info["num_classes"]))),
                "raw": raw.to_json(),
                "info": {"classes": list(range(int(info["num_classes"])))},
            }
        )
    return info


def _labels(y: np.ndarray) -> np.ndarray:
    return y.astype(np.int64)


def _store_dtype(parts: list[tuple[_Member, np.ndarray, bool]]) -> tuple[str, float]:
    """uint8 samples stay uint8 (images, scaled by 255 when read); other integers are scaled
    to [0, 1] when they exceed 1 (``base.to_float_samples``'s rule: one extra pass for the
    maximum); floats are stored as float32 as they are."""
    dtype = parts[0][0].dtype
    if dtype == np.uint8:
        return "uint8", 1.0
    if dtype.kind in "iu":
        top = max((int(c.max(initial=0)) for m, _, _ in parts for c in m.chunks()), default=0)
        return "float32", 255.0 if top > 1 else 1.0
    return "float32", 1.0


def _check_xy(
    x_shape: tuple[int, ...],
    x_dtype: np.dtype[Any],
    y: np.ndarray,
    xn: str,
    yn: str,
    need_all_classes: bool = True,
) -> dict[str, Any]:
    """The checks of ``x`` that its header settles (shape, dtype; finiteness is checked as
    the rows are converted) and of the labels ``y``."""
    if len(x_shape) not in (2, 3, 4):
        raise DatasetError(
            f"npz: {xn} has shape {list(x_shape)}; expected (N, D), (N, H, W), (N, C, H, W) or "
            "(N, H, W, C)"
        )
    if not (np.issubdtype(x_dtype, np.number) and not np.issubdtype(x_dtype, np.complexfloating)):
        raise DatasetError(f"npz: {xn} must hold real numbers, found dtype {x_dtype}")
    if y.ndim != 1:
        raise DatasetError(f"npz: {yn} must be 1-D class labels, found shape {list(y.shape)}")
    if len(y) != x_shape[0]:
        raise DatasetError(f"npz: {x_shape[0]} samples in {xn} but {len(y)} labels in {yn}")
    if x_shape[0] == 0:
        raise DatasetError(f"npz: {xn} is empty")
    if not np.issubdtype(y.dtype, np.number):
        raise DatasetError(f"npz: {yn} must hold integer class labels, found dtype {y.dtype}")
    if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
        raise DatasetError(f"npz: {yn} must hold integer class labels, found NaN or inf")
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
        layout = image_layout(x_shape, f"npz: {xn}")
    except DatasetError as exc:
        raise DatasetError(exc.reason) from None
    dims = [int(d) for d in x_shape[1:]]
    if layout == "NHW":
        shape = [1, *dims]
    elif layout == "NHWC":
        shape = [dims[2], dims[0], dims[1]]
    else:
        shape = dims
    info: dict[str, Any] = {
        "num_samples": x_shape[0],
        "layout": layout,
        "input_shape": shape,
        "num_classes": len(counts),
        "class_counts": [int(c) for c in counts],
        "dtype": str(x_dtype),
        "max_label": int(labels.max()),
    }
    if len(x_shape) == 2:
        info["in_features"] = int(x_shape[1])
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
    convert=convert,
)
