"""A folder of images per class: uploaded as a ``.zip`` (``class_name/image.png``), or a local
folder of class folders. Images are resized to ``size`` (bilinear) and read as grayscale
(1 channel) or RGB.

An upload is decoded once, in parallel, into the on-disk store (``store.py``) at the default
size as RGB; a job asking for another size or grayscale reads the zip (``store_fits``)."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import model_validator

from nas_service.catalog.datasets.base import (
    Arrays,
    DatasetError,
    RawLayout,
    SplitOptions,
    check_arrays,
    check_zip,
    dataset_entry,
    read_member,
    safe_member_name,
)
from nas_service.catalog.datasets.store import ConvertContext
from search_spaces import DataShape

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)
MAX_IMAGE_SIDE = 4096
DEFAULT_SIZE = 32


class Options(SplitOptions):
    size: int | list[int] | None = None
    grayscale: bool | None = None

    @model_validator(mode="after")
    def _sane_image_size(self) -> Options:
        size = self.size
        sides = [size] if isinstance(size, int) else size
        if sides is not None and (
            len(sides) not in (1, 2) or any(not 4 <= s <= 512 for s in sides)
        ):
            raise ValueError(f"size {size} must be one side or [height, width], each in 4..512")
        return self


def shape(options: Mapping[str, Any], info: Mapping[str, Any]) -> DataShape | None:
    if "num_classes" not in info:
        return None
    size = options.get("size") or DEFAULT_SIZE
    h, w = (size, size) if isinstance(size, int) else (size[0], size[-1])
    channels = 1 if options.get("grayscale") else 3
    return DataShape.of((channels, h, w), int(info["num_classes"]))


def _members(zf: zipfile.ZipFile) -> Iterator[tuple[zipfile.ZipInfo, str]]:
    """The image members of an archive with their class folder; anything else is refused."""
    for info in zf.infolist():
        p = safe_member_name(info.filename)
        if info.is_dir() or p.parts[0] == "__MACOSX" or p.name.startswith("."):
            continue
        if len(p.parts) != 2:
            raise DatasetError(
                f"zip member {info.filename!r}: images must sit directly in a class folder "
                "at the top of the zip (class_name/image.png)"
            )
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DatasetError(
                f"zip member {info.filename!r}: not an image (allowed extensions "
                f"{sorted(IMAGE_EXTENSIONS)})"
            )
        yield info, p.parts[0]


# ----- the upload conversion (service) --------------------------------------------------------
DECODE_THREADS = min(8, os.cpu_count() or 1)


def store_fits(options: Mapping[str, Any]) -> bool:
    """The store holds RGB images at the default size: a job asking for another size or for
    grayscale reads the zip itself."""
    size = options.get("size")
    return _size_pair(DEFAULT_SIZE if size is None else size) == _size_pair(DEFAULT_SIZE) and not (
        options.get("grayscale") or False
    )


def _decode(item: tuple[str, bytes], h: int, w: int) -> tuple[np.ndarray, tuple[int, int], str]:
    from PIL import Image

    name, data = item
    try:
        with Image.open(io.BytesIO(data)) as im:
            size = im.size
            if max(size) > MAX_IMAGE_SIDE:
                raise DatasetError(
                    f"{name}: {size[0]}x{size[1]} exceeds {MAX_IMAGE_SIDE} pixels per side"
                )
            mode = im.mode
            arr = np.asarray(im.convert("RGB").resize((w, h), Image.Resampling.BILINEAR))
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f"{name}: unreadable image ({exc})") from exc
    return arr.transpose(2, 0, 1), size, mode


def convert(path: Path, ctx: ConvertContext) -> dict[str, Any]:
    """A zip (or a registered folder) whose top-level folders are the classes, each holding
    image files: decoded in parallel, resized to the default size as RGB, written as uint8
    into the store in chunks. Returns the stored info."""
    base = Path(path)
    if base.is_dir():
        listing = [(label, src) for label, src, _ in _folder_listing(base)]
        counts: dict[str, int] = {}
        for label, _ in listing:
            counts[label] = counts.get(label, 0) + 1

        def fetch(items: list[tuple[str, str]]) -> list[tuple[str, bytes]]:
            return [(src, Path(src).read_bytes()) for _, src in items]

        return _convert(listing, counts, fetch, ctx, str(base))
    try:
        zf = zipfile.ZipFile(base)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"not a readable zip file ({exc})") from exc
    except OSError as exc:
        raise DatasetError(f"{base}: cannot be read ({exc})") from exc
    with zf:
        check_zip(zf, ctx.limits, "zip")
        members = sorted(_members(zf), key=lambda m: (m[1], m[0].filename))
        infos = {m.filename: m for m, _ in members}
        counts = {}
        for _, label in members:
            counts[label] = counts.get(label, 0) + 1

        def fetch_zip(items: list[tuple[str, str]]) -> list[tuple[str, bytes]]:
            return [(name, read_member(zf, infos[name])) for _, name in items]

        return _convert(
            [(label, m.filename) for m, label in members], counts, fetch_zip, ctx, "zip"
        )


def _folder_listing(base: Path) -> Iterator[tuple[str, str, None]]:
    class_dirs = sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    for d in class_dirs:
        files = sorted(
            f for f in d.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not files:
            raise DatasetError(f"{d.name}: empty class folder (no image files)")
        for f in files:
            yield d.name, str(f), None


def _convert(
    listing: list[tuple[str, str]],
    counts: dict[str, int],
    fetch: Any,
    ctx: ConvertContext,
    source: str,
) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    if len(counts) < 2:
        raise DatasetError(
            f"{source}: found {len(counts)} class folder(s) with images; at least 2 are needed"
        )
    names = sorted(counts)
    index = {c: i for i, c in enumerate(names)}
    h, w = _size_pair(DEFAULT_SIZE)
    sizes: set[tuple[int, int]] = set()
    modes: set[str] = set()
    chunk = 1024
    with (
        ctx.writer(sample_shape=(3, h, w), dtype="uint8", total=len(listing)) as out,
        ThreadPoolExecutor(DECODE_THREADS) as pool,
    ):
        for start in range(0, len(listing), chunk):
            items = listing[start : start + chunk]
            # Reading the archive stays in this thread; decoding (PIL frees the GIL) does not.
            decoded = list(pool.map(lambda it: _decode(it, h, w), fetch(items)))
            for _, size, mode in decoded:
                sizes.add(size)
                modes.add(mode)
            x = np.stack([d[0] for d in decoded])
            out.put(x, np.asarray([index[label] for label, _ in items], dtype=np.int64))
        out.finish(
            {
                "format": "image-folder",
                "name": "image-folder",
                "classes": names,
                "raw": RawLayout("NHWC", "uint8", 255.0).to_json(),
                "info": {"classes": names, "size": [h, w]},
            }
        )
    return {
        "num_classes": len(names),
        "classes": names,
        "class_counts": [counts[n] for n in names],
        "num_samples": len(listing),
        "image_sizes": sorted([list(s) for s in sizes])[:10],
        "modes": sorted(modes),
        "store_size": [h, w],
    }


# ----- the reader (workers) -------------------------------------------------------------------
def _size_pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        pair = (size, size)
    else:
        vals = [int(s) for s in size]
        if len(vals) != 2:
            raise DatasetError(f"image-folder: size={list(vals)} must be an int or (height, width)")
        pair = (vals[0], vals[1])
    if min(pair) < 1:
        raise DatasetError(f"image-folder: size={list(pair)} must be positive")
    return pair


def _folder_images(base: Path) -> Iterator[tuple[str, str, bytes]]:
    class_dirs = sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    for d in class_dirs:
        files = sorted(
            f for f in d.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not files:
            raise DatasetError(
                f"{d}: empty class folder (no image files with extensions "
                f"{sorted(IMAGE_EXTENSIONS)})"
            )
        for f in files:
            yield d.name, str(f), f.read_bytes()


def _zip_images(path: Path) -> Iterator[tuple[str, str, bytes]]:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{path}: not a readable zip file ({exc})") from exc
    with zf:
        members = sorted(_members(zf), key=lambda m: (m[1], m[0].filename))
        for info, label in members:
            yield label, f"{path}:{info.filename}", read_member(zf, info)


def read(
    *,
    seed: int = 0,
    root: str | Path | None = None,
    size: int | Sequence[int] = DEFAULT_SIZE,
    grayscale: bool = False,
) -> Arrays:
    """``root``: a folder of class folders, or a zip of them (the stored upload)."""
    from PIL import Image, UnidentifiedImageError

    if root is None:
        raise DatasetError(
            "image-folder: the option 'root' (a folder of class folders, or their zip) is required"
        )
    base = Path(root)
    if base.is_file() and zipfile.is_zipfile(base):
        images = _zip_images(base)
    elif base.is_dir():
        images = _folder_images(base)
    else:
        raise DatasetError(f"{base}: folder not found")
    h, w = _size_pair(size)
    mode = "L" if grayscale else "RGB"
    xs: list[np.ndarray] = []
    labels: list[str] = []
    for label, source, data in images:
        try:
            with Image.open(io.BytesIO(data)) as im:
                arr = np.asarray(
                    im.convert(mode).resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32
                )
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DatasetError(f"{source}: unreadable image ({exc})") from exc
        xs.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
        labels.append(label)
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise DatasetError(
            f"{base}: found {len(classes)} class folder(s) with images; need at least 2 "
            "(one sub-folder of images per class)"
        )
    index = {c: i for i, c in enumerate(classes)}
    x = (np.stack(xs) / 255.0).astype(np.float32)
    y = np.asarray([index[c] for c in labels], dtype=np.int64)
    check_arrays(x, y, str(base))
    info = {"root": str(base), "classes": classes, "size": [h, w]}
    # Raw samples: the decoded images at ``size``, uint8, (N, H, W) or (N, H, W, 3).
    raw = RawLayout("NHW" if grayscale else "NHWC", "uint8", 255.0)
    return Arrays(f"image-folder:{base.stem}", x, y, raw, info=info)


ENTRY = dataset_entry(
    "image-folder",
    "an uploaded .zip of one folder of images per class",
    Options,
    f"{__name__}:read",
    shape,
    builtin=False,
    file_option="root",
    suffix=".zip",
    convert=convert,
    store_fits=store_fits,
)
