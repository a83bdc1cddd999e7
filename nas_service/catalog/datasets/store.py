"""The on-disk form of a dataset: converted once, read memory-mapped by every process.

A store is a folder::

    meta.json      what the samples are: shape, layout, dtype, scale, classes, per-channel
                   mean / std (of the samples scaled to [0, 1] for images), the raw layout
    x.npy          samples, (N, C, H, W) uint8 for images (channels first) or (N, D) float32
    y.npy          int64 labels 0..K-1
    x_test.npy     optional: the file's own test split, same sample shape
    y_test.npy

Formats write it chunk by chunk (:class:`StoreWriter`), so converting a file needs memory for a
chunk, not for the dataset; readers map it (:func:`open_store`), so a process holds the pages
it touches. :meth:`Store.release` drops the mapped pages from the process (the kernel keeps
them cached), which keeps a process's resident memory flat however large the store is.

Torch-free: the service converts uploads with it, the workers read it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import mmap
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas_service.catalog.datasets.base import DatasetError

log = logging.getLogger(__name__)

STORE_VERSION = 1
META = "meta.json"
STORE_SUFFIX = ".store"
# Rows per conversion chunk: about 12 MB of 32x32x3 images.
CHUNK_ROWS = 4096

Progress = Callable[[int, int], None]


class RunningStats:
    """Per-channel mean and variance over chunks (Chan's parallel combination, float64)."""

    def __init__(self, channels: int):
        self.n = 0
        self.mean = np.zeros(channels)
        self.m2 = np.zeros(channels)

    def add(self, x: np.ndarray, scale: float = 1.0) -> None:
        """``x``: (n, C, H, W) or (n, D); values divided by ``scale`` first."""
        if len(x) == 0:
            return
        # At most about 1 M values at a time: float64 temporaries stay a few MB.
        step = max(1, 1_000_000 // max(1, math.prod(x.shape[1:])))
        if len(x) > step:
            for i in range(0, len(x), step):
                self.add(x[i : i + step], scale)
            return
        v = np.asarray(x, dtype=np.float64)
        if scale != 1.0:
            v = v / scale
        # One column per channel (images) or feature (tables).
        cols = v.transpose(1, 0, 2, 3).reshape(v.shape[1], -1) if v.ndim == 4 else v.T
        k = cols.shape[1]
        mean = cols.mean(axis=1)
        m2 = ((cols - mean[:, None]) ** 2).sum(axis=1)
        total = self.n + k
        delta = mean - self.mean
        self.mean = self.mean + delta * (k / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.n * k / total)
        self.n = total

    def result(self) -> tuple[list[float], list[float]]:
        std = np.sqrt(self.m2 / max(self.n, 1))
        std = np.where(std < 1e-6, 1.0, std)
        return self.mean.astype(np.float32).tolist(), std.astype(np.float32).tolist()


def _map_npy(path: Path) -> tuple[np.ndarray, mmap.mmap | None]:
    """A read-only view of a ``.npy`` file's array over a shared mapping (and the mapping)."""
    with path.open("rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        offset = fh.tell()
        if fortran and len(shape) > 1:
            raise DatasetError(f"{path}: a Fortran-ordered array is not a dataset store")
        count = math.prod(shape)
        if count == 0:
            return np.zeros(shape, dtype=dtype), None
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        # Batches gather rows at random: no read-ahead around each one.
        if hasattr(mmap, "MADV_RANDOM"):
            with contextlib.suppress(OSError, ValueError):
                mm.madvise(mmap.MADV_RANDOM)
    arr = np.frombuffer(mm, dtype=dtype, count=count, offset=offset).reshape(shape)
    return arr, mm


class Store:
    """An opened store: ``x`` / ``x_test`` are read-only views over file mappings; ``y`` /
    ``y_test`` are small and held in memory. Pickles as its path (a worker process maps it
    again)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        meta_path = self.path / META
        if not meta_path.is_file():
            raise DatasetError(f"{self.path}: not a dataset store (no {META})")
        self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        if self.meta.get("version") != STORE_VERSION:
            raise DatasetError(
                f"{self.path}: store version {self.meta.get('version')}; this code reads "
                f"{STORE_VERSION}"
            )
        self._maps: list[mmap.mmap] = []
        self.x = self._map("x.npy")
        self.y = np.array(self._map("y.npy"), dtype=np.int64)
        self.x_test: np.ndarray | None = None
        self.y_test: np.ndarray | None = None
        if (self.path / "x_test.npy").is_file():
            self.x_test = self._map("x_test.npy")
            self.y_test = np.array(self._map("y_test.npy"), dtype=np.int64)
        self.release()  # the labels were copied: drop their pages

    def reader(self, name: str = "x") -> RowReader:
        """Rows of ``x`` (or ``x_test``) read with ``pread``: what batches use, so that a
        process's resident memory holds the rows it asked for and not the file pages a
        mapping would bring in around them (the page cache keeps the file, shared)."""
        return RowReader(self.path / f"{name}.npy")

    def _map(self, name: str) -> np.ndarray:
        arr, mm = _map_npy(self.path / name)
        if mm is not None:
            self._maps.append(mm)
        return arr

    def release(self) -> None:
        """Drop the mapped pages from this process (they stay in the page cache): resident
        memory no longer counts what earlier reads touched."""
        advice = getattr(mmap, "MADV_DONTNEED", None)
        if advice is None:
            return
        for mm in self._maps:
            with contextlib.suppress(OSError, ValueError):  # closed, or not supported here
                mm.madvise(advice)

    @property
    def scale(self) -> float:
        return float(self.meta["scale"])

    def __reduce__(self) -> tuple[Any, ...]:
        return (open_store, (str(self.path),))


class RowReader:
    """Rows of a ``.npy`` file by position, read with ``os.preadv`` into a fresh array (runs of
    consecutive rows in one call). Picklable (as its path) and safe to share across forked
    processes (``pread`` keeps no file position)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        with self.path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            self.offset = fh.tell()
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.row_bytes = math.prod(self.shape[1:]) * self.dtype.itemsize
        self.fd = os.open(self.path, os.O_RDONLY)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (ascending gives the fewest calls; any order is kept)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        if len(rows) == 0:
            return out
        if rows.min() < 0 or rows.max() >= self.shape[0]:
            raise IndexError(f"rows outside 0..{self.shape[0] - 1}")
        view = out.reshape(-1).view(np.uint8).data  # a writable memoryview of ``out``
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        starts = [0, *breaks.tolist()]
        ends = [*breaks.tolist(), len(rows)]
        rb = self.row_bytes
        for a, b in zip(starts, ends, strict=True):
            pos, want, where = a * rb, (b - a) * rb, self.offset + int(rows[a]) * rb
            while want > 0:
                got = os.preadv(self.fd, [view[pos : pos + want]], where)
                if got <= 0:
                    raise DatasetError(f"{self.path}: truncated store file")
                pos, want, where = pos + got, want - got, where + got
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        return (RowReader, (self.path,))

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            os.close(self.fd)


def open_store(path: str | Path) -> Store:
    return Store(Path(path))


def is_store(path: str | Path) -> bool:
    return (Path(path) / META).is_file()


HEADER_BYTES = 256  # a fixed .npy header, rewritten with the final shape at the end


def _npy_header(dtype: np.dtype[Any], shape: tuple[int, ...]) -> bytes:
    """A version-1.0 ``.npy`` header padded to exactly :data:`HEADER_BYTES`."""
    body = repr(
        {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    )
    room = HEADER_BYTES - 10  # magic (6), version (2), header length (2)
    if len(body) + 1 > room:
        raise ValueError(f"shape {shape} does not fit a {HEADER_BYTES}-byte header")
    text = (body + " " * (room - len(body) - 1) + "\n").encode("latin1")
    return np.lib.format.magic(1, 0) + len(text).to_bytes(2, "little") + text


class _Column:
    """One growing ``.npy`` file: rows appended, the header written with the count at the end."""

    def __init__(self, path: Path, dtype: str, sample_shape: tuple[int, ...]):
        self.path, self.dtype, self.sample_shape = path, np.dtype(dtype), sample_shape
        self.rows = 0
        self.fh = path.open("wb")
        self.fh.write(_npy_header(self.dtype, (0, *sample_shape)))

    def append(self, a: np.ndarray) -> None:
        self.fh.write(np.ascontiguousarray(a, dtype=self.dtype).tobytes())
        self.rows += len(a)

    def close(self) -> None:
        self.fh.seek(0)
        self.fh.write(_npy_header(self.dtype, (self.rows, *self.sample_shape)))
        self.fh.close()


class StoreWriter:
    """Writes a store chunk by chunk (rows appended; the count need not be known ahead) into a
    temporary sibling folder; :meth:`finish` renames it into place, :meth:`abort` (or leaving
    the ``with`` block on an error) removes it: a failed conversion leaves nothing."""

    def __init__(
        self,
        dest: Path,
        *,
        sample_shape: Sequence[int],
        dtype: str,
        total: int | None = None,
        progress: Progress | None = None,
    ):
        if dtype not in ("uint8", "float32"):
            raise ValueError(f"store dtype must be uint8 or float32, got {dtype}")
        self.dest = Path(dest)
        self.tmp = self.dest.with_name(f".{self.dest.name}.part-{uuid.uuid4().hex[:8]}")
        self.tmp.mkdir(parents=True)
        self.sample_shape = tuple(int(s) for s in sample_shape)
        self.dtype = dtype
        self.scale = 255.0 if dtype == "uint8" else 1.0
        self.total, self.progress = total, progress
        self.written = 0
        self._cols: dict[str, _Column] = {}
        self.stats = RunningStats(self.sample_shape[0])

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None:
            self.abort()

    def _col(self, name: str, dtype: str, shape: tuple[int, ...]) -> _Column:
        if name not in self._cols:
            self._cols[name] = _Column(self.tmp / f"{name}.npy", dtype, shape)
        return self._cols[name]

    def put(self, x: np.ndarray, y: np.ndarray, *, test: bool = False) -> None:
        """Append samples (already in the store's layout, (n, C, H, W) or (n, D)) and labels to
        the samples, or to the file's own test split."""
        if len(x) != len(y):
            raise DatasetError(f"{len(x)} samples but {len(y)} labels in one chunk")
        if tuple(x.shape[1:]) != self.sample_shape:
            raise DatasetError(
                f"samples of shape {list(x.shape[1:])}; expected {list(self.sample_shape)}"
            )
        suffix = "_test" if test else ""
        self._col("x" + suffix, self.dtype, self.sample_shape).append(x)
        self._col("y" + suffix, "int64", ()).append(np.asarray(y, dtype=np.int64))
        if not test:
            self.stats.add(x, self.scale)
        self.written += len(x)
        if self.progress is not None:
            self.progress(self.written, max(self.total or 0, self.written))

    def count(self, *, test: bool = False) -> int:
        col = self._cols.get("x_test" if test else "x")
        return 0 if col is None else col.rows

    def finish(self, meta: dict[str, Any]) -> Path:
        """Write the headers and ``meta.json`` (with the store's own fields); move into place."""
        if self.count() == 0:
            raise DatasetError("the dataset is empty")
        mean, std = self.stats.result()
        for col in self._cols.values():
            col.close()
        full = {
            **meta,
            "version": STORE_VERSION,
            "num_samples": self.count(),
            "num_test_samples": self.count(test=True),
            "sample_shape": list(self.sample_shape),
            "layout": "NCHW" if len(self.sample_shape) == 3 else "ND",
            "dtype": self.dtype,
            "scale": self.scale,
            "mean": mean,
            "std": std,
        }
        (self.tmp / META).write_text(json.dumps(full))
        if self.dest.exists():
            shutil.rmtree(self.dest)
        os.replace(self.tmp, self.dest)
        return self.dest

    def abort(self) -> None:
        for col in self._cols.values():
            if not col.fh.closed:
                col.fh.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass
class ConvertContext:
    """What a format's converter gets besides the source: the upload limits, where the store
    goes, and a progress callback (samples written, total)."""

    limits: Any
    dest: Path
    progress: Progress | None = None

    def writer(
        self, *, sample_shape: Sequence[int], dtype: str, total: int | None = None
    ) -> StoreWriter:
        return StoreWriter(
            self.dest, sample_shape=sample_shape, dtype=dtype, total=total, progress=self.progress
        )


def log_progress(label: str, every: float = 0.1) -> Progress:
    """A progress callback that logs about every ``every`` of the total."""
    state = {"next": 0.0}

    def report(done: int, total: int) -> None:
        frac = done / max(total, 1)
        if frac >= state["next"] or done == total:
            log.info("%s: converted %d / %d samples (%.0f%%)", label, done, total, 100 * frac)
            state["next"] = frac + every

    return report


def raw_to_store_rows(x: np.ndarray, layout: str, store_dtype: str) -> np.ndarray:
    """A chunk of a file's samples in the store's layout and dtype: (n, H, W) gains a channel,
    channels-last moves first; uint8 stays uint8 (images), anything else becomes float32
    (integers other than uint8 are scaled by 255 when the file holds values above 1: the
    rule ``base.to_float_samples`` applies)."""
    if layout == "NHW":
        x = x[:, None, :, :]
    elif layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    if store_dtype == "uint8":
        return np.ascontiguousarray(x, dtype=np.uint8)
    return np.ascontiguousarray(x, dtype=np.float32)
