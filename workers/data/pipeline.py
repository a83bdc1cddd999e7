"""The input pipeline: batches gathered from a split's rows (in memory or memory-mapped),
augmented and normalised per batch, through a torch ``DataLoader`` (worker processes, pinned
memory) for a store on disk.

Every random choice is a function of (seed, epoch, step, rank), never of the process or of the
loader's workers: a batch is the same however many workers produce it, and every rank's share
is reproducible.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from nas_service.catalog.datasets.augment import AugmentOptions

Augment = AugmentOptions
# The sub-streams of the run seed: the epoch order (what batches() always used) and the
# augmentation draws.
_ORDER_MULT = 1_000_003
_AUGMENT_STREAM = 11
_RESOLUTION_STREAM = 13


def order_of(n: int, *, seed: int, epoch: int, shuffle: bool) -> torch.Tensor:
    """The epoch's sample order: the same for a seed and epoch in every process."""
    if not shuffle:
        return torch.arange(n)
    g = torch.Generator().manual_seed(int(seed) * _ORDER_MULT + int(epoch))
    return torch.randperm(n, generator=g)


def step_generator(stream: int, seed: int, epoch: int, step: int, rank: int = 0) -> torch.Generator:
    key = np.random.SeedSequence([int(seed), stream, int(epoch), int(step), int(rank)])
    return torch.Generator().manual_seed(int(key.generate_state(1, dtype=np.uint64)[0] >> 1))


def sample_resolution(choices: Sequence[int], *, seed: int, epoch: int, step: int) -> int:
    """OFA's elastic resolution for one step: drawn from ``choices`` by (seed, epoch, step)
    only, so every rank of a step resizes its share to the same side."""
    if not choices:
        raise ValueError("sample_resolution needs at least one choice")
    g = step_generator(_RESOLUTION_STREAM, seed, epoch, step)
    return int(choices[int(torch.randint(len(choices), (1,), generator=g))])


def augment_batch(x: torch.Tensor, opts: AugmentOptions, g: torch.Generator) -> torch.Tensor:
    """Random crop (padded or resized) and horizontal flip of an image batch (N, C, H, W),
    each sample drawn independently from ``g``."""
    n, c, h, w = x.shape
    if n == 0:
        return x
    if opts.crop == "pad" and opts.padding > 0:
        p = opts.padding
        padded = F.pad(x, (p, p, p, p))
        oy = torch.randint(0, 2 * p + 1, (n,), generator=g)
        ox = torch.randint(0, 2 * p + 1, (n,), generator=g)
        rows = (oy[:, None] + torch.arange(h)[None, :])[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w)[None, :])[:, None, None, :]
        x = padded[
            torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols
        ]
    flip = (torch.rand(n, generator=g) < 0.5) if opts.flip else torch.zeros(n, dtype=torch.bool)
    if opts.crop == "resized":
        lo, hi = opts.scale
        area = lo + (hi - lo) * torch.rand(n, generator=g)
        lr = torch.log(torch.tensor(opts.ratio, dtype=torch.float32))
        ratio = torch.exp(lr[0] + (lr[1] - lr[0]) * torch.rand(n, generator=g))
        # Box sides as fractions of the image (clipped to it), centres where the box fits.
        bw = torch.sqrt(area * ratio).clamp(max=1.0)
        bh = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (torch.rand(n, generator=g) * 2 - 1) * (1 - bw)
        cy = (torch.rand(n, generator=g) * 2 - 1) * (1 - bh)
        sx = torch.where(flip, -bw, bw)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2] = sx, cx
        theta[:, 1, 1], theta[:, 1, 2] = bh, cy
        grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if opts.flip:
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


class Rows:
    """What a batch is gathered from: one split's rows of an array (``x`` raw: uint8 or
    float32, in memory or memory-mapped), their labels, and the scaling to the normalised
    float32 inputs the networks take (``/ scale``, then ``(x - mean) / std``)."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        index: np.ndarray,
        *,
        scale: float,
        mean: np.ndarray,
        std: np.ndarray,
        fetch: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        self.x, self.y, self.index = x, y, index
        self.scale = float(scale)
        shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
        self.mean = torch.as_tensor(np.asarray(mean, dtype=np.float32)).reshape(shape)
        self.std = torch.as_tensor(np.asarray(std, dtype=np.float32)).reshape(shape)
        # A store's row reader (pread): rows come in without mapping the file's pages.
        self.fetch = fetch

    def __len__(self) -> int:
        return len(self.index)

    def raw(self, pos: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows at positions ``pos`` of the split, as float32 scaled to [0, 1] for images
        (not yet normalised), and their labels."""
        rows = self.index[pos]
        # A sorted gather reads the file forwards; the order is put back after.
        order = np.argsort(rows, kind="stable")
        xs = np.empty((len(rows), *self.x.shape[1:]), dtype=self.x.dtype)
        xs[order] = self.x[rows[order]] if self.fetch is None else self.fetch(rows[order])
        t = torch.from_numpy(xs).float()
        if self.scale != 1.0:
            t.div_(self.scale)
        return t, torch.from_numpy(self.y[rows].astype(np.int64))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def take(self, pos: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.raw(pos)
        return self.normalise(x), y


class BatchSet(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Item ``i`` is this rank's share of global batch ``start_step + i`` of one epoch."""

    def __init__(
        self,
        rows: Rows,
        order: torch.Tensor,
        *,
        batch_size: int,
        steps: int,
        start_step: int,
        rank: int,
        world_size: int,
        augment: AugmentOptions | None,
        seed: int,
        epoch: int,
    ):
        self.rows = rows
        self.order = order.numpy()
        self.batch_size, self.steps, self.start_step = batch_size, steps, start_step
        self.rank, self.world_size = rank, world_size
        self.per_rank = batch_size // world_size
        self.augment, self.seed, self.epoch = augment, seed, epoch

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        step = self.start_step + i
        idx = self.order[step * self.batch_size : (step + 1) * self.batch_size]
        if self.world_size > 1:
            idx = idx[self.rank * self.per_rank : (self.rank + 1) * self.per_rank]
        x, y = self.rows.raw(idx)
        if self.augment is not None:
            g = step_generator(_AUGMENT_STREAM, self.seed, self.epoch, step, self.rank)
            x = augment_batch(x, self.augment, g)
        return self.rows.normalise(x), y


def default_workers() -> int:
    """Loader worker processes for a store on disk: ``NAS_DATA_WORKERS`` if set, else up to
    4, leaving a core to the training process."""
    env = os.environ.get("NAS_DATA_WORKERS")
    if env is not None and env.strip():
        return max(0, int(env))
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def iterate(
    batches: BatchSet, *, workers: int, pin_memory: bool | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches in order: in this process (``workers`` 0), or from a ``DataLoader`` of
    ``workers`` processes (each maps the store itself), pinned for a GPU when one is there."""
    pin = torch.cuda.is_available() if pin_memory is None else pin_memory
    if workers <= 0 and not pin:
        for i in range(len(batches)):
            yield batches[i]
        return
    loader: DataLoader[Any] = DataLoader(
        batches,
        batch_size=None,
        shuffle=False,
        num_workers=max(0, workers),
        pin_memory=pin,
        # A private generator: creating the loader draws no number from torch's global
        # stream, so training randomness does not depend on the worker count.
        generator=torch.Generator().manual_seed(0),
        prefetch_factor=4 if workers > 0 else None,
    )
    yield from loader


def steps_of(n: int, batch_size: int, drop_last: bool) -> int:
    return max(1, n // batch_size if drop_last else math.ceil(n / batch_size))
