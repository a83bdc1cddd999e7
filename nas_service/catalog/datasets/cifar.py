"""CIFAR-10 / CIFAR-100 as users have them on disk: the python batches (``data_batch_1`` ..
``data_batch_5`` and ``test_batch``, or CIFAR-100's ``train`` and ``test``), uploaded as the
``.tar.gz`` they come in (or a ``.tar`` / ``.zip`` of the batches, with ``format=cifar``) or
registered by the path of their folder or archive.

The batches are pickles, and a pickle can name any callable to run on load. They are never
unpickled plainly: :class:`BatchUnpickler` admits only the numpy reconstructors and types a
batch holds (an ndarray of uint8 pixels, lists of labels, byte strings); anything else is
refused before it is called. An upload is converted once into the on-disk store
(``store.py``): uint8 (N, 3, 32, 32) images, the test batch as the test split.
"""

from __future__ import annotations

import io
import pickle
import re
import tarfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np

from nas_service.catalog.datasets.base import (
    Arrays,
    DatasetError,
    RawLayout,
    SplitOptions,
    check_arrays,
    check_zip,
    dataset_entry,
    read_member,
)
from nas_service.catalog.datasets.store import ConvertContext
from search_spaces import DataShape

TRAIN_RE = re.compile(r"^(data_batch_\d+|train)$")
TEST_NAMES = ("test_batch", "test")
META_NAMES = ("batches.meta", "meta")
PIXELS = 3 * 32 * 32


class BatchUnpickler(pickle.Unpickler):
    """Admits only what a CIFAR batch needs to be rebuilt: numpy arrays and dtypes (and the
    codec pickles of Python 2 use for byte strings). Dicts, lists, ints and strings are pickle
    opcodes, not globals, so they need no admission."""

    ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: a CIFAR batch holds only numpy arrays, lists "
            "and strings"
        )


def load_batch(data: bytes, source: str) -> dict[str, Any]:
    """A batch's dict (keys as str) through :class:`BatchUnpickler`."""
    try:
        batch = BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        if str(exc).startswith("refusing to load"):
            raise DatasetError(f"{source}: {exc}") from exc
        raise DatasetError(f"{source}: not a CIFAR python batch ({exc})") from exc
    except Exception as exc:  # a truncated or corrupt pickle raises many types
        raise DatasetError(
            f"{source}: not a CIFAR python batch ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(batch, dict):
        raise DatasetError(f"{source}: expected a dict with keys data and labels")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in batch.items()}


def batch_arrays(batch: Mapping[str, Any], source: str) -> tuple[np.ndarray, np.ndarray]:
    """``data`` as uint8 (N, 3, 32, 32) and the labels (``labels``, or CIFAR-100's
    ``fine_labels``) as int64."""
    key = "labels" if "labels" in batch else "fine_labels"
    for k in ("data", key):
        if k not in batch:
            raise DatasetError(f"{source}: missing key '{k}'; found keys {sorted(batch)}")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise DatasetError(f"{source}: data must be a uint8 array, found {type(data).__name__}")
    if data.ndim != 2 or data.shape[1] != PIXELS:
        raise DatasetError(
            f"{source}: shape mismatch: data is {list(data.shape)}, expected (N, {PIXELS})"
        )
    try:
        labels = np.asarray(batch[key], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{source}: {key} must be integer class labels ({exc})") from exc
    if labels.ndim != 1 or len(labels) != len(data):
        raise DatasetError(
            f"{source}: label count mismatch: {len(data)} images but {labels.size} labels"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 99):
        raise DatasetError(
            f"{source}: labels must be in 0..99, found {labels.min()}..{labels.max()}"
        )
    return data.reshape(-1, 3, 32, 32), labels


# ----- where the batches are: a folder, a tar archive or a zip ------------------------------------
Batches = dict[str, Callable[[], bytes]]  # file name -> its bytes


def _folder(base: Path) -> Batches:
    if (base / "cifar-10-batches-py").is_dir():
        base = base / "cifar-10-batches-py"
    elif (base / "cifar-100-python").is_dir():
        base = base / "cifar-100-python"
    return {f.name: f.read_bytes for f in base.iterdir() if f.is_file()}


def _tar(path: Path, limit: int) -> Batches:
    try:
        tf = tarfile.open(path, "r:*")  # noqa: SIM115 - read lazily by the extractors below
        members = tf.getmembers()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetError(f"not a readable tar archive ({type(exc).__name__}: {exc})") from exc
    out: Batches = {}
    for m in members:
        name = PurePosixPath(m.name).name
        if not m.isfile() or not _wanted(name):
            continue
        if m.size > limit:
            raise DatasetError(f"{m.name}: {m.size} bytes; the limit is {limit}")

        def extract(m: tarfile.TarInfo = m) -> bytes:
            fh = tf.extractfile(m)
            if fh is None:
                raise DatasetError(f"{m.name}: not a regular file")
            try:
                data = fh.read(m.size + 1)
            except (tarfile.TarError, OSError, EOFError, zipfile.BadZipFile) as exc:
                raise DatasetError(f"{m.name}: truncated or corrupt archive ({exc})") from exc
            if len(data) != m.size:
                raise DatasetError(f"{m.name}: truncated ({len(data)} of {m.size} bytes)")
            return data

        out[name] = extract
    return out


def _zip(path: Path, limits: Any) -> Batches:
    try:
        zf = zipfile.ZipFile(path)
        infos = check_zip(zf, limits, "zip") if limits is not None else zf.infolist()
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"not a readable zip file ({exc})") from exc
    out: Batches = {}
    for info in infos:
        name = PurePosixPath(info.filename).name
        if info.is_dir() or not _wanted(name):
            continue

        def extract(info: zipfile.ZipInfo = info) -> bytes:
            try:
                return read_member(zf, info)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise DatasetError(f"{info.filename}: corrupt archive member ({exc})") from exc

        out[name] = extract
    return out


def _wanted(name: str) -> bool:
    return bool(TRAIN_RE.match(name)) or name in TEST_NAMES or name in META_NAMES


def _batches(path: Path, limits: Any) -> Batches:
    limit = int(getattr(limits, "max_uncompressed_bytes", 1 << 40))
    if path.is_dir():
        found = _folder(path)
    elif zipfile.is_zipfile(path):
        found = _zip(path, limits)
    elif path.is_file():
        found = _tar(path, limit)
    else:
        raise DatasetError(f"{path}: not found")
    return {k: v for k, v in found.items() if _wanted(k)}


def _order(found: Batches) -> tuple[list[str], str | None]:
    def key(name: str) -> tuple[int, str]:
        digits = re.findall(r"\d+", name)
        return (int(digits[-1]) if digits else 0, name)

    train = sorted((n for n in found if TRAIN_RE.match(n)), key=key)
    if not train:
        raise DatasetError(
            f"no CIFAR training batches (data_batch_1.. or train) found; found {sorted(found)}"
        )
    test = next((n for n in TEST_NAMES if n in found), None)
    return train, test


def _classes(found: Batches, n: int) -> list[Any]:
    for name in META_NAMES:
        if name in found:
            meta = load_batch(found[name](), name)
            names = meta.get("label_names", meta.get("fine_label_names"))
            if isinstance(names, list) and len(names) >= n:
                return [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in names]
    return list(range(n))


def _parts(found: Batches) -> Iterator[tuple[str, np.ndarray, np.ndarray, bool]]:
    train, test = _order(found)
    for name in train:
        yield (name, *batch_arrays(load_batch(found[name](), name), name), False)
    if test is not None:
        yield (test, *batch_arrays(load_batch(found[test](), test), test), True)


# ----- the upload conversion (service) --------------------------------------------------------
def convert(path: Path, ctx: ConvertContext) -> dict[str, Any]:
    """One batch at a time through the restricted unpickler into the store."""
    found = _batches(Path(path), ctx.limits)
    counts = np.zeros(100, dtype=np.int64)
    top = 0
    n_test = 0
    with ctx.writer(sample_shape=(3, 32, 32), dtype="uint8") as w:
        for _, x, y, is_test in _parts(found):
            w.put(x, y, test=is_test)
            if is_test:
                n_test += len(y)
            else:
                counts += np.bincount(y, minlength=100)
            top = max(top, int(y.max(initial=0)))
        k = 10 if top < 10 else 100
        present = counts[:k]
        if (present > 0).sum() < 2:
            raise DatasetError("CIFAR batches: at least 2 classes are needed")
        classes = _classes(found, k)[:k]
        w.finish(
            {
                "format": "cifar",
                "name": f"cifar{k}",
                "classes": classes,
                "raw": RawLayout("NCHW", "uint8", 255.0).to_json(),
                "info": {"classes": classes},
            }
        )
    info: dict[str, Any] = {
        "num_samples": int(counts.sum()),
        "num_test_samples": n_test,
        "num_classes": k,
        "classes": classes,
        "class_counts": [int(c) for c in present],
        "input_shape": [3, 32, 32],
        "in_channels": 3,
        "layout": "NCHW",
        "dtype": "uint8",
    }
    return info


def shape(options: Mapping[str, Any], info: Mapping[str, Any]) -> DataShape | None:
    if "num_classes" not in info:
        return None
    return DataShape.of((3, 32, 32), int(info["num_classes"]))


# ----- the reader (workers: local folders or archives) ------------------------------------------
def read(*, seed: int = 0, root: str | Path | None = None) -> Arrays:
    """All batches in memory (small local copies; an upload is read from its store)."""
    if root is None:
        raise DatasetError(
            "cifar: the option 'root' (a folder or archive of the batches) is required"
        )
    found = _batches(Path(root), None)
    xs, ys, test = [], [], None
    for _, x, y, is_test in _parts(found):
        if is_test:
            test = (x.astype(np.float32) / 255.0, y)
        else:
            xs.append(x)
            ys.append(y)
    x = np.concatenate(xs).astype(np.float32) / 255.0
    y = np.concatenate(ys)
    check_arrays(x, y, str(root))
    k = 10 if int(y.max()) < 10 else 100
    info = {"root": str(root), "classes": _classes(found, k)[:k]}
    return Arrays(f"cifar{k}", x, y, RawLayout("NCHW", "uint8", 255.0), test=test, info=info)


ENTRY = dataset_entry(
    "cifar",
    "CIFAR-10/100 python batches: the .tar.gz as downloaded, or a .tar / .zip of the batches",
    SplitOptions,
    f"{__name__}:read",
    shape,
    builtin=False,
    file_option="root",
    suffix=".tar.gz",
    convert=convert,
)
