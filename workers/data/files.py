"""Datasets read from the user's files: ``npz`` arrays, an ``image-folder`` tree and ``cifar10``.

Every fault a user can cause is a ``DatasetError`` that names the file and what is wrong.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from workers.data.base import DatasetError, DatasetSplits, check_arrays, encode_labels, make_splits
from workers.data.registry import register_dataset

IMAGE_EXTENSIONS = {
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
}


def _to_float_images(x: np.ndarray, source: str) -> np.ndarray:
    """(N,H,W) -> (N,1,H,W); (N,C,H,W) and (N,D) kept; integers scaled to [0, 1]."""
    if x.ndim == 3:
        x = x[:, None, :, :]
    elif x.ndim not in (2, 4):
        raise DatasetError(
            f"{source}: x has shape {x.shape}; expected (N, D), (N, H, W) or (N, C, H, W)"
        )
    if x.dtype.kind in "iu":
        top = 255.0 if x.dtype == np.uint8 or x.max(initial=0) > 1 else 1.0
        return x.astype(np.float32) / top
    if x.dtype.kind != "f":
        raise DatasetError(f"{source}: x must be numeric, found dtype {x.dtype}")
    return x.astype(np.float32)


def load_npz(
    *,
    seed: int = 0,
    path: str | Path | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
) -> DatasetSplits:
    """Optional arrays ``x_test`` and ``y_test`` become the test split as given."""
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
    x = _to_float_images(arrays["x"], str(p))
    y_raw = arrays["y"]
    has_test = "x_test" in arrays or "y_test" in arrays
    test: tuple[np.ndarray, np.ndarray] | None = None
    if has_test:
        if "x_test" not in arrays or "y_test" not in arrays:
            raise DatasetError(f"{p}: x_test and y_test must be given together")
        xt = _to_float_images(arrays["x_test"], f"{p} (x_test)")
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
    return make_splits(
        f"npz:{p.name}",
        x,
        y,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        test=test,
        info={"path": str(p), "classes": classes},
    )


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


def load_image_folder(
    *,
    seed: int = 0,
    root: str | Path | None = None,
    size: int | Sequence[int] = 32,
    grayscale: bool = False,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
) -> DatasetSplits:
    """Images are resized to ``size`` (bilinear) and read as grayscale (1 channel) or RGB."""
    from PIL import Image, UnidentifiedImageError

    if root is None:
        raise DatasetError(
            "image-folder: the option 'root' (a folder of class folders) is required"
        )
    base = Path(root)
    if not base.is_dir():
        raise DatasetError(f"{base}: folder not found")
    h, w = _size_pair(size)
    class_dirs = sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(class_dirs) < 2:
        raise DatasetError(
            f"{base}: found {len(class_dirs)} class folder(s); need at least 2 "
            "(one sub-folder of images per class)"
        )
    xs: list[np.ndarray] = []
    ys: list[int] = []
    mode = "L" if grayscale else "RGB"
    for label, d in enumerate(class_dirs):
        files = sorted(
            f for f in d.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not files:
            raise DatasetError(
                f"{d}: empty class folder (no image files with extensions "
                f"{sorted(IMAGE_EXTENSIONS)})"
            )
        for f in files:
            try:
                with Image.open(f) as im:
                    arr = np.asarray(
                        im.convert(mode).resize((w, h), Image.Resampling.BILINEAR),
                        dtype=np.float32,
                    )
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                raise DatasetError(f"{f}: unreadable image ({exc})") from exc
            xs.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
            ys.append(label)
    x = np.stack(xs) / 255.0
    y = np.asarray(ys, dtype=np.int64)
    check_arrays(x, y, str(base))
    return make_splits(
        f"image-folder:{base.name}",
        x.astype(np.float32),
        y,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        info={"root": str(base), "classes": [d.name for d in class_dirs], "size": [h, w]},
    )


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """The CIFAR batches are pickles; allow only what numpy arrays need, so a crafted file
    cannot run code on load."""

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DatasetError(f"{path}: file not found (expected the CIFAR-10 python batch)")
    try:
        with path.open("rb") as fh:
            batch = _ArrayOnlyUnpickler(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError) as exc:
        raise DatasetError(f"{path}: not a CIFAR-10 python batch ({exc})") from exc
    if not isinstance(batch, dict):
        raise DatasetError(f"{path}: expected a dict with keys data and labels")
    batch = {(k.decode() if isinstance(k, bytes) else k): v for k, v in batch.items()}
    for key in ("data", "labels"):
        if key not in batch:
            raise DatasetError(f"{path}: missing key '{key}'; found keys {sorted(batch)}")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetError(f"{path}: shape mismatch: data is {data.shape}, expected (N, 3072)")
    if len(labels) != len(data):
        raise DatasetError(
            f"{path}: label count mismatch: {len(data)} images but {len(labels)} labels"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f"{path}: labels must be in 0..9, found {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels


@register_dataset(
    "cifar10", "CIFAR-10 from a local copy of the python batches (data_batch_1..5, test_batch)"
)
def load_cifar10(
    *,
    seed: int = 0,
    root: str | Path | None = None,
    val_fraction: float = 0.1,
    max_train: int | None = None,
    max_test: int | None = None,
) -> DatasetSplits:
    """``max_train`` / ``max_test`` take seeded, stratified subsets for CPU-sized runs."""
    if root is None:
        raise DatasetError("cifar10: the option 'root' (folder with data_batch_1..5) is required")
    base = Path(root)
    if (base / "cifar-10-batches-py").is_dir():
        base = base / "cifar-10-batches-py"
    parts = [_read_cifar_batch(base / f"data_batch_{i}") for i in range(1, 6)]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    xt, yt = _read_cifar_batch(base / "test_batch")
    rng = np.random.default_rng(seed)
    if max_train is not None and max_train < len(x):
        keep = np.sort(rng.permutation(len(x))[:max_train])
        x, y = x[keep], y[keep]
    if max_test is not None and max_test < len(xt):
        keep = np.sort(rng.permutation(len(xt))[:max_test])
        xt, yt = xt[keep], yt[keep]
    xf = x.astype(np.float32) / 255.0
    xtf = xt.astype(np.float32) / 255.0
    check_arrays(xf, y, str(base))
    return make_splits(
        "cifar10",
        xf,
        y,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=0.0,
        test=(xtf, yt),
        info={"root": str(base), "classes": 10},
    )
