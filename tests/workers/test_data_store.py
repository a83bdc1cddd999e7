"""The on-disk store and the input pipeline: the same batches in memory and on disk, over ranks,
loader workers and resumes; seeded augmentation; rows for BN calibration; flat memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nas_service.catalog.datasets.store import StoreWriter, open_store
from workers.data import (
    Augment,
    DatasetError,
    DatasetSplits,
    augment_batch,
    load_dataset,
    sample_resolution,
)


def _write_store(dest: Path, n: int, side: int = 32, classes: int = 10, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with StoreWriter(dest, sample_shape=(3, side, side), dtype="uint8", total=n) as w:
        for start in range(0, n, 4096):
            k = min(4096, n - start)
            w.put(
                rng.integers(0, 256, (k, 3, side, side), dtype=np.uint8),
                (np.arange(start, start + k) % classes).astype(np.int64),
            )
        w.finish(
            {
                "name": "generated",
                "classes": list(range(classes)),
                "raw": {"layout": "NCHW", "dtype": "uint8", "scale": 255.0},
            }
        )
    return dest


def _npz_and_store(tmp_path: Path) -> tuple[DatasetSplits, DatasetSplits]:
    """The same channels-last uint8 file, read in memory and through the store."""
    from nas_service.catalog.datasets import npz
    from nas_service.catalog.datasets.store import ConvertContext
    from nas_service.settings import Settings

    rng = np.random.default_rng(3)
    p = tmp_path / "hwc.npz"
    np.savez(p, x=rng.integers(0, 256, (90, 6, 6, 3), dtype=np.uint8), y=np.arange(90) % 3)
    npz.convert(p, ConvertContext(Settings(_env_file=None), tmp_path / "s.store"))  # type: ignore[call-arg]
    mem = load_dataset("npz", seed=4, path=p)
    disk = load_dataset("npz", seed=4, store=tmp_path / "s.store")
    return mem, disk


def test_store_and_memory_give_the_same_splits_and_batches(tmp_path: Path) -> None:
    mem, disk = _npz_and_store(tmp_path)
    assert mem.sizes() == disk.sizes() and mem.input_shape == disk.input_shape == (3, 6, 6)
    assert disk.x.dtype == np.uint8
    assert np.allclose(mem.mean, disk.mean, atol=1e-6) and np.allclose(mem.std, disk.std, atol=1e-6)
    for split in ("train", "val", "test"):
        a, b = mem.tensors(split), disk.tensors(split)
        assert torch.allclose(a[0], b[0], atol=1e-5) and torch.equal(a[1], b[1])
    got = list(disk.batches("train", 8, seed=1, epoch=2))
    want = list(mem.batches("train", 8, seed=1, epoch=2))
    assert len(got) == len(want) == mem.steps("train", 8)
    for (x1, y1), (x2, y2) in zip(got, want, strict=True):
        assert torch.allclose(x1, x2, atol=1e-5) and torch.equal(y1, y2)
    assert disk.info["preprocessing"]["layout"] == "NHWC"


@pytest.fixture(scope="module")
def store_data(tmp_path_factory: pytest.TempPathFactory) -> DatasetSplits:
    d = _write_store(tmp_path_factory.mktemp("s") / "g.store", 2000, side=16)
    return load_dataset("npz", seed=0, store=d)


def test_ranks_workers_and_resume_give_the_same_batches(store_data: DatasetSplits) -> None:
    data = store_data
    aug = Augment(crop="pad", padding=2, flip=True)
    one = list(data.batches("train", 64, seed=5, epoch=1, augment=aug, workers=0))
    assert len(one) == data.steps("train", 64)
    # Two loader worker processes produce exactly the same batches.
    two = list(data.batches("train", 64, seed=5, epoch=1, augment=aug, workers=2))
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(one, two, strict=True)
    )
    # The ranks' shares, concatenated, are the global batch (the same augmentation per rank
    # is not promised: each rank draws its own; without augmentation they are equal).
    plain = list(data.batches("train", 64, seed=5, epoch=1))
    ranks = [
        list(data.batches("train", 64, seed=5, epoch=1, rank=r, world_size=4)) for r in range(4)
    ]
    for step, (x, y) in enumerate(plain):
        assert torch.equal(torch.cat([ranks[r][step][0] for r in range(4)]), x)
        assert torch.equal(torch.cat([ranks[r][step][1] for r in range(4)]), y)
    # Deterministic for a seed and epoch; another epoch is another order.
    again = list(data.batches("train", 64, seed=5, epoch=1, augment=aug))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(one, again, strict=True))
    other = next(iter(data.batches("train", 64, seed=5, epoch=2)))
    assert not torch.equal(other[1], plain[0][1])
    # A mid-epoch resume continues with the same batches, augmentation included.
    resumed = list(data.batches("train", 64, seed=5, epoch=1, augment=aug, start_step=7))
    assert len(resumed) == len(one) - 7
    assert all(torch.equal(a[0], b[0]) for a, b in zip(resumed, one[7:], strict=True))
    # Augmentation moved pixels; the labels are the plain batches'.
    assert not torch.equal(one[0][0], plain[0][0]) and torch.equal(one[0][1], plain[0][1])


def test_rows_and_materialised_splits(store_data: DatasetSplits) -> None:
    data = store_data
    idx = np.array([17, 3, 250, 3])
    x, y = data.rows("train", idx)
    full_x, full_y = data.tensors("train")
    assert torch.equal(x, full_x[idx]) and torch.equal(y, full_y[idx])
    # Normalised with training statistics.
    assert abs(float(full_x.mean())) < 1e-3 and abs(float(full_x.std()) - 1) < 1e-3
    assert data.tensors("val")[0] is data.tensors("val")[0]


def test_augment_kinds_and_their_checks() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 12, 12)
    crop = augment_batch(x, Augment(crop="resized", scale=(0.3, 0.6)), g)
    assert crop.shape == x.shape and not torch.allclose(crop, x)
    none = augment_batch(x, Augment(crop="none", flip=False), g)
    assert torch.equal(none, x)
    flipped = augment_batch(x, Augment(crop="none", flip=True), torch.Generator().manual_seed(1))
    same = [
        torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(2)) for i in range(16)
    ]
    assert all(same) and not torch.equal(flipped, x)
    with pytest.raises(ValueError, match="scale"):
        Augment(scale=(0.8, 0.2))
    tab = load_dataset("synthetic", n=40, shape=(5,), classes=2)
    with pytest.raises(DatasetError, match="images only"):
        next(iter(tab.batches("train", 8, seed=0, augment=Augment())))
    # The elastic resolution of a step depends on (seed, epoch, step) only: every rank agrees.
    picks = [sample_resolution((24, 28, 32), seed=3, epoch=0, step=s) for s in range(40)]
    assert picks == [sample_resolution((24, 28, 32), seed=3, epoch=0, step=s) for s in range(40)]
    assert set(picks) == {24, 28, 32}


def _rss_kib() -> tuple[int, int]:
    status = Path("/proc/self/status").read_text()
    values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(values["VmRSS"].split()[0]), int(values["VmHWM"].split()[0])


# The bound: the training loop's own memory (model, batches, gradients) plus the pages of a
# few batches; a float32 copy of the 50k set alone would be 614 MB.
RSS_BOUND_MB = 120


def test_training_on_50k_images_keeps_rss_flat(tmp_path: Path) -> None:
    store = _write_store(tmp_path / "big.store", 50_000)
    assert open_store(store).x.nbytes == 50_000 * 3072
    data = load_dataset("npz", seed=0, store=store)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=4), torch.nn.Flatten(), torch.nn.LazyLinear(10)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    model(torch.zeros(1, 3, 32, 32))
    # Reset the peak (VmHWM) to the current figure, then train one epoch on the whole set.
    Path("/proc/self/clear_refs").write_text("5")
    before, _ = _rss_kib()
    aug = Augment(crop="pad", padding=4)
    steps = 0
    for x, y in data.batches("train", 256, seed=0, augment=aug, workers=0):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        steps += 1
    bn_x, _ = data.rows("train", torch.randperm(data.sizes()["train"])[:2000])
    _, peak = _rss_kib()
    grown_mb = (peak - before) / 1024
    assert steps == data.steps("train", 256) > 100 and bn_x.shape == (2000, 3, 32, 32)
    assert grown_mb < RSS_BOUND_MB, f"peak RSS grew {grown_mb:.0f} MB over one epoch of 50k"
