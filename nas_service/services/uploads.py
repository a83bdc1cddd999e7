"""Validation of uploaded dataset files (.npz arrays, zipped image folders).

Both formats are zip archives, so both pass the same guards first: member names that could
escape a folder, too many members, and zip bombs (total uncompressed size and compression
ratio, checked from the central directory before anything is decompressed, and enforced again
while reading because headers can lie).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from nas_service.domain import ValidationFailed
from nas_service.settings import Settings

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
MAX_IMAGE_SIDE = 4096
FIELD = "file"


def _fail(reason: str) -> ValidationFailed:
    return ValidationFailed.one(FIELD, reason)


def safe_member_name(name: str) -> PurePosixPath:
    """The member's path, or an error if it is absolute, climbs out, or is not portable."""
    if "\\" in name or "\x00" in name:
        raise _fail(f"zip member {name!r}: backslashes and NUL bytes are not allowed in names")
    p = PurePosixPath(name)
    if p.is_absolute() or (p.parts and p.parts[0].endswith(":")):
        raise _fail(f"zip member {name!r}: absolute paths are not allowed")
    if ".." in p.parts:
        raise _fail(f"zip member {name!r}: '..' would escape the dataset folder")
    return p


def check_zip(zf: zipfile.ZipFile, settings: Settings, source: str) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > settings.max_zip_members:
        raise _fail(f"{source}: {len(infos)} members; the limit is {settings.max_zip_members}")
    total = 0
    for info in infos:
        safe_member_name(info.filename)
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > 1 << 20 and ratio > settings.max_compression_ratio:
            raise _fail(
                f"{source}: member {info.filename!r} expands {ratio:.0f}x "
                f"(limit {settings.max_compression_ratio:g}x): refusing a possible zip bomb"
            )
    if total > settings.max_uncompressed_bytes:
        raise _fail(
            f"{source}: {total} bytes uncompressed; the limit is "
            f"{settings.max_uncompressed_bytes}: refusing a possible zip bomb"
        )
    return infos


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """Read at most the declared size; a member that inflates past it is rejected."""
    with zf.open(info) as fh:
        data = fh.read(info.file_size + 1)
    if len(data) > info.file_size:
        raise _fail(f"zip member {info.filename!r} is larger than its header says")
    return data


def inspect_npz(path: Path, settings: Settings) -> dict[str, Any]:
    """Arrays ``x`` (N, D) | (N, H, W) | (N, C, H, W) and integer labels ``y`` 0..K-1; optional
    ``x_test``/``y_test`` with the same sample shape."""
    try:
        with zipfile.ZipFile(path) as zf:
            check_zip(zf, settings, "npz")
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValidationFailed:
        raise
    except Exception as exc:  # numpy raises several types for malformed files
        raise _fail(f"not a readable .npz file ({type(exc).__name__}: {exc})") from exc
    for key in ("x", "y"):
        if key not in arrays:
            raise _fail(f"npz: missing array '{key}'; found {sorted(arrays)}")
    for key, value in arrays.items():
        # NpzFile hands back raw bytes for a member that is not a valid .npy array.
        if not isinstance(value, np.ndarray):
            raise _fail(f"not a readable .npz file: member '{key}' is not a .npy array")
    x, y = arrays["x"], arrays["y"]
    info = _check_xy(x, y, "x", "y")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise _fail("npz: x_test and y_test must be given together")
    if "x_test" in arrays:
        xt, yt = arrays["x_test"], arrays["y_test"]
        test = _check_xy(xt, yt, "x_test", "y_test", need_all_classes=False)
        if xt.shape[1:] != x.shape[1:]:
            raise _fail(f"npz: x_test samples are {xt.shape[1:]} but x samples are {x.shape[1:]}")
        if test["max_label"] >= info["num_classes"]:
            raise _fail(
                f"npz: y_test has label {test['max_label']} but y has {info['num_classes']} classes"
            )
        info["num_test_samples"] = test["num_samples"]
    info.pop("max_label")
    return info


def _check_xy(
    x: np.ndarray, y: np.ndarray, xn: str, yn: str, need_all_classes: bool = True
) -> dict[str, Any]:
    if x.ndim not in (2, 3, 4):
        raise _fail(
            f"npz: {xn} has shape {list(x.shape)}; expected (N, D), (N, H, W) or (N, C, H, W)"
        )
    if not (np.issubdtype(x.dtype, np.number) and not np.issubdtype(x.dtype, np.complexfloating)):
        raise _fail(f"npz: {xn} must hold real numbers, found dtype {x.dtype}")
    if y.ndim != 1:
        raise _fail(f"npz: {yn} must be 1-D class labels, found shape {list(y.shape)}")
    if len(y) != len(x):
        raise _fail(f"npz: {len(x)} samples in {xn} but {len(y)} labels in {yn}")
    if len(x) == 0:
        raise _fail(f"npz: {xn} is empty")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise _fail(f"npz: {xn} holds {int((~np.isfinite(x)).sum())} NaN or infinite values")
    integral = np.issubdtype(y.dtype, np.floating) and bool(np.all(np.mod(y, 1) == 0))
    if not np.issubdtype(y.dtype, np.integer) and not integral:
        raise _fail(f"npz: {yn} must hold integer class labels, found dtype {y.dtype}")
    labels = y.astype(np.int64)
    if labels.min() < 0:
        raise _fail(f"npz: {yn} has negative label {int(labels.min())}; labels are 0..K-1")
    counts = np.bincount(labels)
    missing = [int(c) for c in np.flatnonzero(counts == 0)]
    if need_all_classes and missing:
        raise _fail(
            f"npz: labels must be 0..K-1 with every class present; no sample for {missing[:10]}"
        )
    if need_all_classes and len(counts) < 2:
        raise _fail(f"npz: {len(counts)} class found; at least 2 are needed")
    info: dict[str, Any] = {
        "num_samples": len(x),
        "input_shape": [int(d) for d in (x.shape[1:] if x.ndim != 3 else (1, *x.shape[1:]))],
        "num_classes": len(counts),
        "class_counts": [int(c) for c in counts],
        "dtype": str(x.dtype),
        "max_label": int(labels.max()),
    }
    if x.ndim == 2:
        info["in_features"] = int(x.shape[1])
    else:
        info["in_channels"] = 1 if x.ndim == 3 else int(x.shape[1])
    return info


def inspect_image_zip(path: Path, settings: Settings) -> dict[str, Any]:
    """A zip whose top-level folders are the classes, each holding image files."""
    from PIL import Image

    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise _fail(f"not a readable zip file ({exc})") from exc
    classes: dict[str, int] = {}
    sizes: set[tuple[int, int]] = set()
    modes: set[str] = set()
    with zf:
        for info in check_zip(zf, settings, "zip"):
            p = safe_member_name(info.filename)
            if info.is_dir() or p.parts[0] == "__MACOSX" or p.name.startswith("."):
                continue
            if len(p.parts) != 2:
                raise _fail(
                    f"zip member {info.filename!r}: images must sit directly in a class folder "
                    "at the top of the zip (class_name/image.png)"
                )
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                raise _fail(
                    f"zip member {info.filename!r}: not an image (allowed extensions "
                    f"{sorted(IMAGE_EXTENSIONS)})"
                )
            data = read_member(zf, info)
            try:
                with Image.open(io.BytesIO(data)) as im:
                    w, h = im.size
                    if max(w, h) > MAX_IMAGE_SIDE:
                        raise _fail(
                            f"{info.filename}: {w}x{h} exceeds {MAX_IMAGE_SIDE} pixels per side"
                        )
                    im.verify()
                    modes.add(im.mode)
            except ValidationFailed:
                raise
            except Exception as exc:
                raise _fail(f"{info.filename}: unreadable image ({exc})") from exc
            sizes.add((w, h))
            classes[p.parts[0]] = classes.get(p.parts[0], 0) + 1
    if len(classes) < 2:
        raise _fail(f"zip: found {len(classes)} class folder(s) with images; at least 2 are needed")
    names = sorted(classes)
    return {
        "num_classes": len(names),
        "classes": names,
        "class_counts": [classes[n] for n in names],
        "num_samples": sum(classes.values()),
        "image_sizes": sorted([list(s) for s in sizes])[:10],
        "modes": sorted(modes),
    }
