"""Datasets: the built-in ones (a job names them) and the upload formats (a job gives an id).

Each entry has its loader options model (``dataset.options``, checked at submission; see
``nas_service.catalog.dataset_options``), the worker loader (``impl``) and what the service can
know of the data without loading it: ``shape(options, stored_info)`` gives the
:class:`~search_spaces.DataShape` the space is fitted to, so a space that cannot take the data
is refused at submission. ``file_option`` is the loader option the runner sets to an upload's
stored file (never the user).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nas_service.catalog.dataset_options import (
    SYNTHETIC_DEFAULT_N,
    ImageFolderOptions,
    SplitOptions,
    SyntheticOptions,
)
from nas_service.catalog.registry import CATALOG, Entry, load
from search_spaces import DataShape

KIND = "dataset"
ShapeFn = Callable[[Mapping[str, Any], Mapping[str, Any]], DataShape | None]

# The loaders' defaults, which the shape of a dataset depends on (a test keeps them equal).
SYNTHETIC_DEFAULTS: dict[str, Any] = {"n": SYNTHETIC_DEFAULT_N, "shape": [1, 8, 8], "classes": 4}
IMAGE_FOLDER_DEFAULT_SIZE = 32


def _digits(options: Mapping[str, Any], info: Mapping[str, Any]) -> DataShape:
    return DataShape.of((1, 8, 8), 10)


def _synthetic(options: Mapping[str, Any], info: Mapping[str, Any]) -> DataShape:
    shape = options.get("shape") or SYNTHETIC_DEFAULTS["shape"]
    return DataShape.of(shape, int(options.get("classes") or SYNTHETIC_DEFAULTS["classes"]))


def _npz(options: Mapping[str, Any], info: Mapping[str, Any]) -> DataShape | None:
    if "input_shape" not in info or "num_classes" not in info:
        return None  # stored before the service kept shapes: the runner decides
    return DataShape.of(info["input_shape"], int(info["num_classes"]))


def _image_folder(options: Mapping[str, Any], info: Mapping[str, Any]) -> DataShape | None:
    if "num_classes" not in info:
        return None
    size = options.get("size") or IMAGE_FOLDER_DEFAULT_SIZE
    h, w = (size, size) if isinstance(size, int) else (size[0], size[-1])
    channels = 1 if options.get("grayscale") else 3
    return DataShape.of((channels, h, w), int(info["num_classes"]))


def dataset(
    name: str,
    summary: str,
    options: type[SplitOptions],
    impl: str,
    shape: ShapeFn,
    *,
    builtin: bool,
    file_option: str | None = None,
    suffix: str | None = None,
    inspect: str | None = None,
) -> Entry:
    """``suffix`` and ``inspect`` (the service's ``"module:function"`` that checks an upload and
    returns its stored info) belong to upload formats."""
    return Entry(
        KIND,
        name,
        summary,
        options=options,
        impl=impl,
        info={
            "builtin": builtin,
            "file_option": file_option,
            "suffix": suffix,
            "inspect": inspect,
            "shape": shape,
        },
    )


ENTRIES = [
    dataset(
        "digits",
        "scikit-learn handwritten digits: 1797 real 8x8 grayscale images, 10 classes",
        SplitOptions,
        "workers.data.builtin:load_digits_dataset",
        _digits,
        builtin=True,
    ),
    dataset(
        "synthetic",
        "seeded class prototypes plus noise; any shape (for tests and trials)",
        SyntheticOptions,
        "workers.data.builtin:load_synthetic",
        _synthetic,
        builtin=True,
    ),
    dataset(
        "npz",
        "an uploaded .npz with arrays x (N, D) or (N, C, H, W) and y (N,) class labels",
        SplitOptions,
        "workers.data.files:load_npz",
        _npz,
        builtin=False,
        file_option="path",
        suffix=".npz",
        inspect="nas_service.services.uploads:inspect_npz",
    ),
    dataset(
        "image-folder",
        "an uploaded .zip of one folder of images per class",
        ImageFolderOptions,
        "workers.data.files:load_image_folder",
        _image_folder,
        builtin=False,
        file_option="root",
        suffix=".zip",
        inspect="nas_service.services.uploads:inspect_image_zip",
    ),
]


def builtin_names() -> list[str]:
    return [e.name for e in CATALOG.entries(KIND) if e.info["builtin"]]


def upload_formats() -> list[str]:
    return [e.name for e in CATALOG.entries(KIND) if not e.info["builtin"]]


def upload_suffixes() -> dict[str, str]:
    """File suffix -> upload format."""
    return {
        str(e.info["suffix"]): e.name
        for e in CATALOG.entries(KIND)
        if not e.info["builtin"] and e.info["suffix"]
    }


def inspector(fmt: str) -> Callable[..., dict[str, Any]]:
    """The service's check of an upload of format ``fmt`` (returns the info stored with it)."""
    path = CATALOG.get(KIND, fmt).info["inspect"]
    if not path:
        raise LookupError(f"dataset '{fmt}' is not an upload format")
    fn: Callable[..., dict[str, Any]] = load(str(path))
    return fn


def suffix(fmt: str) -> str:
    return str(CATALOG.get(KIND, fmt).info["suffix"])


def data_shape(name: str, options: Mapping[str, Any], info: Mapping[str, Any]) -> DataShape | None:
    """What the service knows of the data's shape, or None when only loading it would tell."""
    fn: ShapeFn = CATALOG.get(KIND, name).info["shape"]
    return fn(options, info)


def file_option(name: str) -> str:
    opt = CATALOG.get(KIND, name).info["file_option"]
    if not opt:
        raise LookupError(f"dataset '{name}' is built in: it has no file")
    return str(opt)
