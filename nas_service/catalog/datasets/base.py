"""What every dataset format shares: the split options, the arrays a reader returns, the error a
reader or an upload check raises, and the guards for zip archives and label arrays.

Torch-free: the service checks uploads with it, the workers read datasets with it.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from search_spaces import DataShape

# The split every loader applies unless the job says otherwise.
DEFAULT_VAL_FRACTION = 0.15
DEFAULT_TEST_FRACTION = 0.2
UPLOAD_FIELD = "file"


class DatasetError(ValueError):
    """A dataset that cannot be used; the message names the file (or option) and the fault.

    ``field`` is the request field an upload check blames (the uploaded ``file``)."""

    def __init__(self, reason: str, *, field: str = UPLOAD_FIELD):
        self.field, self.reason = field, reason
        super().__init__(reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.reason, self.field))


def _rebuild(cls: type[DatasetError], reason: str, field: str) -> DatasetError:
    return cls(reason, field=field)


class SplitOptions(BaseModel):
    """What every dataset takes: the shares of the samples held out for validation and test (a
    format with its own test split ignores ``test_fraction``)."""

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


SPLIT_OPTIONS = tuple(SplitOptions.model_fields)


@dataclass(frozen=True)
class RawLayout:
    """How the user's own samples look before the reader scaled them: ``layout`` (``NCHW``,
    ``NHWC``, ``NHW`` or ``ND``), ``dtype`` and the ``scale`` they were divided by. An export
    takes samples like these (``search_spaces.nn.preprocess``)."""

    layout: str
    dtype: str
    scale: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {"layout": self.layout, "dtype": self.dtype, "scale": self.scale}


@dataclass
class Arrays:
    """What a format's reader returns: float32 samples ``x`` (N, C, H, W) or (N, D), scaled to
    a sane range (images to [0, 1]), int64 labels ``y`` in 0..K-1, optionally the file's own
    test split, and what the raw samples looked like. The workers split, normalise and batch
    them."""

    name: str
    x: np.ndarray
    y: np.ndarray
    raw: RawLayout
    test: tuple[np.ndarray, np.ndarray] | None = None
    info: dict[str, Any] = field(default_factory=dict)  # JSON-safe metadata


class UploadLimits(Protocol):
    """The service settings an upload check reads."""

    max_zip_members: int
    max_compression_ratio: float
    max_uncompressed_bytes: int


ShapeFn = Callable[[Mapping[str, Any], Mapping[str, Any]], DataShape | None]


# ----- arrays ---------------------------------------------------------------------------------
def check_arrays(x: np.ndarray, y: np.ndarray, source: str, *, min_classes: int = 2) -> None:
    """Shared sanity checks with messages that name ``source`` (a file or dataset name)."""
    if x.shape[0] != y.shape[0]:
        raise DatasetError(
            f"{source}: label count mismatch: {x.shape[0]} samples in x but {y.shape[0]} labels"
        )
    if x.shape[0] == 0:
        raise DatasetError(f"{source}: the dataset is empty")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise DatasetError(f"{source}: x holds {bad} non-finite values (NaN or inf)")
    classes = np.unique(y)
    if len(classes) < min_classes:
        raise DatasetError(
            f"{source}: found {len(classes)} class(es); at least 2 are needed to train a classifier"
        )


def encode_labels(y: np.ndarray, source: str) -> tuple[np.ndarray, list[Any]]:
    """Map arbitrary integer (or string) labels to 0..K-1; returns codes and the class list."""
    if y.ndim != 1:
        raise DatasetError(f"{source}: y must be 1-D (one label per sample), got shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.all(y == np.round(y)):
            raise DatasetError(
                f"{source}: y must hold integer class labels, found {y.dtype} values"
            )
        y = y.astype(np.int64)
    if y.dtype.kind not in "iuUS":
        raise DatasetError(f"{source}: y must hold integer class labels, found dtype {y.dtype}")
    classes, codes = np.unique(y, return_inverse=True)
    return codes.astype(np.int64), [c.item() if hasattr(c, "item") else c for c in classes]


# ----- zip archives (uploads) -----------------------------------------------------------------
def safe_member_name(name: str) -> PurePosixPath:
    """The member's path, or an error if it is absolute, climbs out, or is not portable."""
    if "\\" in name or "\x00" in name:
        raise DatasetError(
            f"zip member {name!r}: backslashes and NUL bytes are not allowed in names"
        )
    p = PurePosixPath(name)
    if p.is_absolute() or (p.parts and p.parts[0].endswith(":")):
        raise DatasetError(f"zip member {name!r}: absolute paths are not allowed")
    if ".." in p.parts:
        raise DatasetError(f"zip member {name!r}: '..' would escape the dataset folder")
    return p


def check_zip(zf: zipfile.ZipFile, limits: UploadLimits, source: str) -> list[zipfile.ZipInfo]:
    """Member names that could escape a folder, too many members, and zip bombs (total
    uncompressed size and compression ratio, from the central directory before anything is
    decompressed; :func:`read_member` enforces it again because headers can lie)."""
    infos = zf.infolist()
    if len(infos) > limits.max_zip_members:
        raise DatasetError(f"{source}: {len(infos)} members; the limit is {limits.max_zip_members}")
    total = 0
    for info in infos:
        safe_member_name(info.filename)
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > 1 << 20 and ratio > limits.max_compression_ratio:
            raise DatasetError(
                f"{source}: member {info.filename!r} expands {ratio:.0f}x "
                f"(limit {limits.max_compression_ratio:g}x): refusing a possible zip bomb"
            )
    if total > limits.max_uncompressed_bytes:
        raise DatasetError(
            f"{source}: {total} bytes uncompressed; the limit is "
            f"{limits.max_uncompressed_bytes}: refusing a possible zip bomb"
        )
    return infos


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """Read at most the declared size; a member that inflates past it is rejected."""
    with zf.open(info) as fh:
        data = fh.read(info.file_size + 1)
    if len(data) > info.file_size:
        raise DatasetError(f"zip member {info.filename!r} is larger than its header says")
    return data


CHANNELS = (1, 3, 4)


def image_layout(shape: tuple[int, ...], source: str) -> str:
    """The layout of a batch of samples: ``ND`` (N, D), ``NHW``, or for 4-D arrays ``NCHW`` or
    ``NHWC`` by where a channel axis (1, 3 or 4 wide) sits. Where both ends could be channels,
    the reading with square images wins ((N, 3, 4, 4) is 4x4 RGB); a batch that no rule
    settles (N, 3, 5, 4) is refused rather than guessed."""
    if len(shape) == 2:
        return "ND"
    if len(shape) == 3:
        return "NHW"
    if len(shape) != 4:
        raise DatasetError(
            f"{source}: x has shape {list(shape)}; expected (N, D), (N, H, W), (N, C, H, W) or "
            "(N, H, W, C)"
        )
    first, last = shape[1] in CHANNELS, shape[3] in CHANNELS
    if first and last:
        square_first, square_last = shape[2] == shape[3], shape[1] == shape[2]
        if square_first != square_last:
            return "NCHW" if square_first else "NHWC"
        raise DatasetError(
            f"{source}: x has shape {list(shape)}: channels-first (C={shape[1]}) or channels-last "
            f"(C={shape[3]}) cannot be told apart; store it as (N, C, H, W) or (N, H, W, C) "
            "with square images, or with H and W other than 1, 3 and 4"
        )
    return "NHWC" if last else "NCHW"


def to_float_samples(x: np.ndarray, source: str) -> tuple[np.ndarray, RawLayout]:
    """Samples as float32 (N, C, H, W) or (N, D): (N,H,W) gains a channel, channels-last is
    moved first, integers are scaled to [0, 1]. Returns the raw layout too."""
    layout = image_layout(tuple(x.shape), source)
    raw_dtype = str(x.dtype)
    if x.dtype.kind in "iu":
        scale = 255.0 if x.dtype == np.uint8 or x.max(initial=0) > 1 else 1.0
    elif x.dtype.kind == "f":
        scale = 1.0
    else:
        raise DatasetError(f"{source}: x must be numeric, found dtype {x.dtype}")
    if layout == "NHW":
        x = x[:, None, :, :]
    elif layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return (x.astype(np.float32) / scale).astype(np.float32), RawLayout(layout, raw_dtype, scale)


# ----- the entry ------------------------------------------------------------------------------
def dataset_entry(
    name: str,
    summary: str,
    options: type[SplitOptions],
    read: str,
    shape: ShapeFn,
    *,
    builtin: bool,
    file_option: str | None = None,
    suffix: str | None = None,
    inspect: Callable[[Any, UploadLimits], dict[str, Any]] | None = None,
    convert: Callable[[Any, Any], dict[str, Any]] | None = None,
    store_fits: Callable[[Mapping[str, Any]], bool] | None = None,
) -> Any:
    """The catalog entry of a dataset format.

    ``read`` is the ``"module:function"`` of the reader (``read(*, seed, **options) ->
    Arrays``; the workers split and normalise what it returns). ``builtin``: a job names it
    (``dataset.name``); otherwise a job gives a stored dataset's id, whose file the runner passes
    as ``file_option``. An upload format has a file ``suffix`` and an ``inspect(path, limits)``
    that checks the upload and returns the info stored with it (``shape`` reads that info).

    ``convert(source, ctx)`` (``ctx``: ``store.ConvertContext``), where a format has one,
    checks the upload (or a registered file or folder) as ``inspect`` does and writes it chunk
    by chunk into the on-disk store the workers map (``store.py``), returning the stored info.
    ``store_fits(options)``: whether a job with these reader options can use the store (a
    format whose store fixes an option, such as the image size, says no for other values; the
    runner then passes the original file to the reader).
    """
    from nas_service.catalog.registry import Entry

    return Entry(
        "dataset",
        name,
        summary,
        options=options,
        impl=read,
        info={
            "builtin": builtin,
            "file_option": file_option,
            "suffix": suffix,
            "upload": inspect is not None or convert is not None,
            "inspect": inspect,
            "convert": convert,
            "store_fits": store_fits,
            "shape": shape,
        },
    )
