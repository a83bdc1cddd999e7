"""Dataset formats: the built-in sets (a job names them), the upload formats (a job gives a
stored dataset's id) and local ones for the command-line tools.

Each format is one module of this package (listed in ``FORMATS``) that defines, torch-free:

- its options model (``dataset.options``, checked at submission);
- ``shape(options, stored_info)``: the :class:`~search_spaces.DataShape` the space is fitted
  to, known without loading the data, so a space that cannot take it is refused at submission;
- for an upload format, ``inspect(path, limits)``: the check of an upload (clear errors, nothing
  stored on failure), returning the info kept with it;
- ``read(*, seed, **options) -> Arrays``: the reader the workers call (they split, normalise
  and batch what it returns) for the small built-in sets and local files;
- for a large upload, ``convert(source, ctx)``: the check of an upload that also writes it,
  chunk by chunk, into the on-disk store (``store.py``) the workers map instead of reading the
  file (``store_fits(options)``: whether a job's options can use that store);
- ``ENTRY``: its catalog entry (``base.dataset_entry``).

``file_option`` is the reader option the runner sets to a stored dataset's file (never the
user).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from nas_service.catalog.datasets.base import (
    DEFAULT_TEST_FRACTION,
    DEFAULT_VAL_FRACTION,
    SPLIT_OPTIONS,
    Arrays,
    DatasetError,
    RawLayout,
    ShapeFn,
    SplitOptions,
    dataset_entry,
)
from nas_service.catalog.registry import CATALOG, Entry
from search_spaces import DataShape

KIND = "dataset"
# The formats' modules, in the order the catalog lists them.
FORMATS = ("digits", "synthetic", "npz", "image_folder", "cifar10", "cifar")

__all__ = [
    "DEFAULT_TEST_FRACTION",
    "DEFAULT_VAL_FRACTION",
    "FORMATS",
    "KIND",
    "SPLIT_OPTIONS",
    "Arrays",
    "DatasetError",
    "RawLayout",
    "SplitOptions",
    "builtin_names",
    "converter",
    "data_options",
    "data_shape",
    "dataset_entry",
    "entries",
    "file_option",
    "inspector",
    "suffix",
    "upload_formats",
    "upload_suffixes",
]


def entries() -> list[Entry]:
    return [importlib.import_module(f"{__name__}.{m}").ENTRY for m in FORMATS]


def builtin_names() -> list[str]:
    return [e.name for e in CATALOG.entries(KIND) if e.info["builtin"]]


def upload_formats() -> list[str]:
    return [e.name for e in CATALOG.entries(KIND) if e.info.get("upload")]


def upload_suffixes() -> dict[str, str]:
    """File suffix -> upload format."""
    return {
        str(e.info["suffix"]): e.name
        for e in CATALOG.entries(KIND)
        if e.info.get("upload") and e.info["suffix"]
    }


def inspector(fmt: str) -> Callable[..., dict[str, Any]]:
    """The service's check of an upload of format ``fmt``: ``(path, settings) -> stored info``;
    a bad file raises ``ValidationFailed`` naming the field (``file``) and the fault."""
    check = CATALOG.get(KIND, fmt).info.get("inspect")
    if check is None:
        raise LookupError(f"dataset '{fmt}' is not an upload format")

    def run(path: Any, settings: Any) -> dict[str, Any]:
        from nas_service.domain import ValidationFailed

        try:
            info: dict[str, Any] = check(path, settings)
        except DatasetError as exc:
            raise ValidationFailed.one(exc.field, exc.reason) from exc
        return info

    return run


def converter(fmt: str) -> Callable[..., dict[str, Any]] | None:
    """The conversion of an upload of format ``fmt`` into the on-disk store: ``(source,
    settings, dest, progress=None) -> stored info``, raising ``ValidationFailed`` (field
    ``file``) for a bad file; None for a format without one (its upload is only inspected)."""
    convert = CATALOG.get(KIND, fmt).info.get("convert")
    if convert is None:
        return None

    def run(source: Any, settings: Any, dest: Any, progress: Any = None) -> dict[str, Any]:
        from nas_service.catalog.datasets.store import ConvertContext
        from nas_service.domain import ValidationFailed

        try:
            info: dict[str, Any] = convert(source, ConvertContext(settings, dest, progress))
        except DatasetError as exc:
            raise ValidationFailed.one(exc.field, exc.reason) from exc
        return info

    return run


def data_options(
    fmt: str, info: Mapping[str, Any], uri: str, options: Mapping[str, Any]
) -> dict[str, Any]:
    """What the workers' ``load_dataset(fmt, **...)`` takes for a stored dataset: its on-disk
    store (``store``, with the split options) when it has one that fits ``options``, else the
    stored file itself as the format's file option (an upload stored before conversion
    existed, or options the store was not converted for)."""
    store = info.get("store")
    fits = CATALOG.get(KIND, fmt).info.get("store_fits")
    if store and (fits is None or fits(options)):
        split = {k: v for k, v in options.items() if k in SPLIT_OPTIONS}
        return {**split, "store": str(store)}
    return {**dict(options), file_option(fmt): uri}


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
