"""The dataset object every stage shares: seeded, disjoint train / validation / test splits over
samples in memory or an on-disk store, read batch by batch (``workers.data.pipeline``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

# A reader's or loader's error: the catalog's, so that one class crosses every layer.
from nas_service.catalog.datasets.base import DatasetError as DatasetError
from nas_service.catalog.datasets.store import RunningStats, Store
from workers.data.pipeline import (
    Augment,
    BatchSet,
    Rows,
    default_workers,
    iterate,
    order_of,
    steps_of,
)


@dataclass
class DatasetSplits:
    """Seeded splits over one array of samples, normalised per batch as they are read.

    ``x`` is the samples as stored: float32 in memory (the small built-in sets and local files,
    already scaled to a sane range) or a read-only memory map of the on-disk store (uint8
    images, or float32 features); ``scale`` takes it to that range and ``mean`` / ``std`` (of
    the training split, per channel or feature) normalise it. Nothing is copied whole: a batch
    (``batches``), given rows (``rows``) or a materialised val / test split (``tensors``) is
    gathered when asked for. Search and BN recalibration use train and val only."""

    name: str
    x: np.ndarray
    y: np.ndarray
    num_classes: int
    input_shape: tuple[int, ...]  # one sample, without the batch dimension
    info: dict[str, Any] = field(default_factory=dict)  # JSON-safe metadata
    # Row indices of each split into the loaded arrays (test: into the provided test arrays
    # when the format has its own), so a split can be traced back to the file. Kept out of
    # ``info`` because it grows with the dataset.
    indices: dict[str, np.ndarray] = field(default_factory=dict)
    mean: np.ndarray = field(default_factory=lambda: np.zeros(1, np.float32))
    std: np.ndarray = field(default_factory=lambda: np.ones(1, np.float32))
    scale: float = 1.0
    test_x: np.ndarray | None = None  # the file's own test split, when it has one
    test_y: np.ndarray | None = None
    store: Any = None  # the opened on-disk store (``catalog.datasets.store.Store``), if any
    # DataLoader worker processes for ``batches`` (0: in this process).
    loader_workers: int = 0
    _materialised: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, repr=False
    )
    _readers: dict[str, Any] = field(default_factory=dict, repr=False)

    def _rows(self, split: str) -> Rows:
        if split not in ("train", "val", "test"):
            raise ValueError(f"unknown split {split!r}; use train, val or test")
        x, y = self.x, self.y
        if split == "test" and self.test_x is not None:
            assert self.test_y is not None
            x, y = self.test_x, self.test_y
        fetch = None
        if self.store is not None:
            name = "x_test" if split == "test" and self.test_x is not None else "x"
            fetch = self._readers.get(name)
            if fetch is None:
                fetch = self._readers[name] = self.store.reader(name)
        return Rows(
            x,
            y,
            self.indices[split],
            scale=self.scale,
            mean=self.mean,
            std=self.std,
            fetch=fetch,
        )

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split, normalised, as tensors (val and test are kept once made; train is
        made on each call: the training path reads it by ``batches`` / ``rows`` instead)."""
        if split in self._materialised:
            return self._materialised[split]
        rows = self._rows(split)
        parts = [
            rows.take(np.arange(i, min(i + 8192, len(rows)))) for i in range(0, len(rows), 8192)
        ]
        if parts:
            x = torch.cat([p[0] for p in parts])
            y = torch.cat([p[1] for p in parts])
        else:
            x = torch.zeros((0, *self.input_shape))
            y = torch.zeros(0, dtype=torch.int64)
        if split != "train":
            self._materialised[split] = (x, y)
        return x, y

    def sizes(self) -> dict[str, int]:
        return {s: len(self.indices[s]) for s in ("train", "val", "test")}

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        seed: int,
        epoch: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
        augment: Augment | None = None,
        workers: int | None = None,
        pin_memory: bool | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of one epoch of ``split`` for one rank: a seeded order (the same for a
        given ``seed`` and ``epoch`` in every process), each global batch of ``batch_size``
        split evenly over ``world_size`` ranks (this rank's share), from step ``start_step``
        (a mid-epoch resume). ``steps(...)`` says how many there are.

        ``augment`` (images only) crops and flips each batch, drawn from (seed, epoch, step,
        rank): the same batches for any number of loader ``workers`` (default
        ``loader_workers``: processes for a store on disk, none in memory). Batches come
        normalised; pinned when a GPU is there unless ``pin_memory`` says otherwise."""
        per_rank = batch_size // world_size
        if per_rank * world_size != batch_size:
            raise ValueError(f"batch_size {batch_size} must divide evenly over {world_size} ranks")
        if augment is not None and not self.is_image:
            raise DatasetError(f"dataset '{self.name}': augment applies to images only")
        rows = self._rows(split)
        order = order_of(len(rows), seed=seed, epoch=epoch, shuffle=shuffle)
        ds = BatchSet(
            rows,
            order,
            batch_size=batch_size,
            steps=self.steps(split, batch_size, drop_last=drop_last),
            start_step=start_step,
            rank=rank,
            world_size=world_size,
            augment=augment,
            seed=seed,
            epoch=epoch,
        )
        n_workers = self.loader_workers if workers is None else workers
        return iterate(ds, workers=min(n_workers, len(ds)), pin_memory=pin_memory)

    def rows(
        self, split: str, index: torch.Tensor | np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples at ``index`` (positions within ``split``) as tensors, in that order:
        what BN calibration and the sampler's probe batch take, without the whole split."""
        pos = np.asarray(torch.as_tensor(index, dtype=torch.long).numpy(), dtype=np.int64)
        return self._rows(split).take(pos)

    def steps(self, split: str, batch_size: int, *, drop_last: bool = True) -> int:
        """Steps of one epoch of ``split`` (at least one)."""
        return steps_of(self.sizes()[split], batch_size, drop_last)

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_materialised"] = {}
        state["_readers"] = {}
        if self.store is not None:  # the mapping travels as the store's path
            state["x"] = state["test_x"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.store is not None:
            self.x, self.test_x = self.store.x, self.store.x_test


def stratified_split(
    y: np.ndarray, fractions: tuple[float, ...], rng: np.random.Generator
) -> list[np.ndarray]:
    """Partition indices of ``y`` into ``len(fractions) + 1`` disjoint, per-class stratified
    parts; part ``i`` gets about ``fractions[i]`` of every class, the last part the rest.
    Every class keeps at least one sample in the last part (the training split)."""
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        start = 0
        for i, f in enumerate(fractions):
            k = round(f * len(idx))
            k = min(k, len(idx) - start - 1)  # leave one for training
            k = max(k, 0)
            parts[i].append(idx[start : start + k])
            start += k
        parts[-1].append(idx[start:])
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]


def split_indices(
    y: np.ndarray,
    *,
    name: str,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    provided_test: int | None,
) -> dict[str, np.ndarray]:
    """The seeded, stratified split of labels ``y`` (test: ``arange(provided_test)`` into the
    file's own test split when it has one)."""
    for label, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= f < 0.9:
            raise DatasetError(f"{name}: {label}={f} must be in [0, 0.9)")
    rng = np.random.default_rng(seed)
    if provided_test is None:
        test_idx, val_idx, train_idx = stratified_split(y, (test_fraction, val_fraction), rng)
    else:
        val_idx, train_idx = stratified_split(y, (val_fraction,), rng)
        test_idx = np.arange(provided_test, dtype=np.int64)
    return {"train": train_idx, "val": val_idx, "test": test_idx}


def train_stats(
    x: np.ndarray, index: np.ndarray, scale: float, fetch: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (images) or per-feature mean and std of the rows ``index`` of ``x``
    (divided by ``scale``), read in chunks (by ``fetch``, a store's row reader, when given):
    a store on disk is never loaded whole."""
    stats = RunningStats(int(x.shape[1]))
    for i in range(0, len(index), 4096):
        part = index[i : i + 4096]
        stats.add(x[part] if fetch is None else fetch(np.sort(part)), scale)
    mean, std = stats.result()
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)


def _meta(
    info: Mapping[str, Any] | None,
    raw: Mapping[str, Any] | None,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    provided_test: bool,
) -> dict[str, Any]:
    meta = dict(info or {})
    meta.update(
        mean=mean.reshape(-1).tolist(),
        std=std.reshape(-1).tolist(),
        # What an export does to the user's raw samples (search_spaces.nn.preprocess).
        preprocessing=None
        if raw is None
        else {**raw, "mean": mean.reshape(-1).tolist(), "std": std.reshape(-1).tolist()},
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction if not provided_test else None,
        provided_test=provided_test,
    )
    return meta


def make_splits(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    info: dict[str, Any] | None = None,
    raw: Mapping[str, Any] | None = None,
) -> DatasetSplits:
    """Split in-memory samples and set up their normalisation with training-split statistics.

    ``x`` is float (N, C, H, W) or (N, D) already scaled to a sane range; normalisation is per
    channel (images) or per feature (tabular), with statistics of the training split only, so
    nothing of validation or test leaks into the model's input scaling.
    """
    x = np.asarray(x, dtype=np.float32)
    indices = split_indices(
        y,
        name=name,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        provided_test=None if test is None else len(test[1]),
    )
    mean, std = train_stats(x, indices["train"], 1.0)
    y_test = y[indices["test"]] if test is None else test[1]
    num_classes = int(max(y.max(), y_test.max() if len(y_test) else 0)) + 1
    return DatasetSplits(
        name=name,
        x=x,
        y=np.asarray(y, dtype=np.int64),
        num_classes=num_classes,
        input_shape=tuple(int(s) for s in x.shape[1:]),
        info=_meta(
            info,
            raw,
            mean,
            std,
            seed=seed,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            provided_test=test is not None,
        ),
        indices=indices,
        mean=mean,
        std=std,
        test_x=None if test is None else np.asarray(test[0], dtype=np.float32),
        test_y=None if test is None else np.asarray(test[1], dtype=np.int64),
    )


def store_splits(
    store: Store, *, seed: int, val_fraction: float, test_fraction: float
) -> DatasetSplits:
    """Splits over an on-disk store (memory-mapped; see ``catalog.datasets.store``): the same
    seeded split and training-split normalisation as :func:`make_splits`, read in chunks."""
    meta = store.meta
    provided = store.x_test is not None
    indices = split_indices(
        store.y,
        name=str(meta.get("name", store.path.name)),
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        provided_test=len(store.y_test) if store.y_test is not None else None,
    )
    mean, std = train_stats(store.x, indices["train"], store.scale, store.reader("x"))
    classes = meta.get("classes") or []
    top = int(store.y.max(initial=0))
    if store.y_test is not None and len(store.y_test):
        top = max(top, int(store.y_test.max()))
    info = {**dict(meta.get("info") or {}), "store": str(store.path)}
    return DatasetSplits(
        name=str(meta.get("name", "store")),
        x=store.x,
        y=store.y,
        num_classes=max(len(classes), top + 1),
        input_shape=tuple(int(s) for s in meta["sample_shape"]),
        info=_meta(
            info,
            meta.get("raw"),
            mean,
            std,
            seed=seed,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            provided_test=provided,
        ),
        indices=indices,
        mean=mean,
        std=std,
        scale=store.scale,
        test_x=store.x_test,
        test_y=store.y_test,
        store=store,
        loader_workers=default_workers(),
    )
