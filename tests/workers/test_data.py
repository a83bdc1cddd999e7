"""Dataset registry: every format, split properties, and the errors bad files give."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from workers.data import DatasetError, list_datasets, load_dataset, space_options_for


def _labels(data: object, split: str) -> np.ndarray:
    return data.tensors(split)[1].numpy()  # type: ignore[attr-defined]


def test_registry_lists_all_formats() -> None:
    from nas_service.catalog import CATALOG

    # The workers load exactly the catalog's datasets (its list is tested in test_catalog_api).
    listed = list_datasets()
    assert list(listed) == CATALOG.names("dataset") and all(listed.values())
    with pytest.raises(DatasetError, match="unknown dataset 'nope'"):
        load_dataset("nope")


def test_digits_is_real_data_with_disjoint_stratified_splits() -> None:
    d = load_dataset("digits", seed=0)
    assert d.num_classes == 10 and d.input_shape == (1, 8, 8)
    assert sum(d.sizes().values()) == 1797
    assert d.sizes() == {"train": 1169, "val": 269, "test": 359}
    x, _ = d.tensors("train")
    # Normalised with training statistics: zero mean, unit variance over the train split.
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std()) - 1.0) < 1e-3
    # Disjoint and covering: every row of the 1797 lands in exactly one split.
    idx = d.indices
    together = np.concatenate([idx["train"], idx["val"], idx["test"]])
    assert sorted(together.tolist()) == list(range(1797))
    assert json.dumps(d.info)  # metadata stays JSON-safe
    # Stratified: every class in every split, in near-equal proportion.
    for s in ("train", "val", "test"):
        counts = np.bincount(_labels(d, s), minlength=10)
        assert counts.min() > 0
        assert counts.max() / counts.min() < 1.35


def test_splits_are_seeded() -> None:
    a, b, c = (load_dataset("digits", seed=s) for s in (3, 3, 4))
    assert torch.equal(a.tensors("val")[0], b.tensors("val")[0])
    assert not torch.equal(a.tensors("val")[0], c.tensors("val")[0])


def test_synthetic_options_and_learnable_structure() -> None:
    d = load_dataset("synthetic", seed=1, n=300, shape=(12,), classes=3)
    assert d.input_shape == (12,) and d.num_classes == 3 and sum(d.sizes().values()) == 300
    # Nearest class mean on train classifies test far above chance (1/3): there is structure.
    x, y = (t.numpy() for t in d.tensors("train"))
    means = np.stack([x[y == c].mean(0) for c in range(3)])
    xt, yt = (t.numpy() for t in d.tensors("test"))
    pred = ((xt[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    assert (pred == yt).mean() > 0.8
    with pytest.raises(DatasetError, match="classes=1"):
        load_dataset("synthetic", classes=1)


def test_npz_shapes_and_provided_test(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    p = tmp_path / "d.npz"
    np.savez(p, x=rng.integers(0, 255, (60, 6, 6), dtype=np.uint8), y=np.repeat([5, 7, 9], 20))
    d = load_dataset("npz", seed=0, path=p)
    assert d.input_shape == (1, 6, 6) and d.num_classes == 3
    assert d.info["classes"] == [5, 7, 9]
    q = tmp_path / "t.npz"
    np.savez(
        q,
        x=rng.normal(size=(40, 5)),
        y=np.arange(40) % 2,
        x_test=rng.normal(size=(10, 5)),
        y_test=np.arange(10) % 2,
    )
    d = load_dataset("npz", seed=0, path=q)
    assert (
        d.input_shape == (5,)
        and d.sizes()["test"] == 10
        and d.sizes()["train"] + d.sizes()["val"] == 40
    )
    r = tmp_path / "c.npz"
    np.savez(r, x=rng.normal(size=(30, 3, 4, 4)).astype(np.float32), y=np.arange(30) % 3)
    assert load_dataset("npz", path=r).input_shape == (3, 4, 4)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((10, 4))}, "missing key 'y'"),
        ({"x": np.zeros((10, 4)), "y": np.arange(9) % 2}, "label count mismatch: 10 samples"),
        ({"x": np.zeros((10, 2, 2, 2, 2)), "y": np.arange(10) % 2}, "x has shape"),
        ({"x": np.full((10, 4), np.nan), "y": np.arange(10) % 2}, "non-finite"),
        ({"x": np.zeros((10, 4)), "y": np.zeros(10, dtype=int)}, "at least 2"),
        (
            {
                "x": np.zeros((10, 4)),
                "y": np.arange(10) % 2,
                "x_test": np.zeros((3, 5)),
                "y_test": np.zeros(3, dtype=int),
            },
            "shape mismatch",
        ),
    ],
)
def test_npz_bad_files_name_file_and_fault(tmp_path: Path, arrays: dict, message: str) -> None:
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(DatasetError, match=message) as err:
        load_dataset("npz", path=p)
    assert "bad.npz" in str(err.value)


def test_npz_not_a_file(tmp_path: Path) -> None:
    p = tmp_path / "junk.npz"
    p.write_text("hello")
    with pytest.raises(DatasetError, match=r"junk\.npz: not a readable"):
        load_dataset("npz", path=p)
    with pytest.raises(DatasetError, match="file not found"):
        load_dataset("npz", path=tmp_path / "none.npz")


def _write_folder(root: Path, classes: int = 2, per: int = 6) -> None:
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per):
            arr = rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / f"class{c}" / f"{i}.png")


def test_image_folder_resizes_grayscale_and_rgb(tmp_path: Path) -> None:
    _write_folder(tmp_path)
    (tmp_path / "class0" / "notes.txt").write_text("ignored: not an image extension")
    d = load_dataset("image-folder", seed=0, root=tmp_path, size=8)
    assert d.input_shape == (3, 8, 8) and d.num_classes == 2 and sum(d.sizes().values()) == 12
    assert d.info["classes"] == ["class0", "class1"]
    g = load_dataset("image-folder", seed=0, root=tmp_path, size=(4, 6), grayscale=True)
    assert g.input_shape == (1, 4, 6)


def test_image_folder_errors(tmp_path: Path) -> None:
    _write_folder(tmp_path)
    (tmp_path / "class2").mkdir()
    with pytest.raises(DatasetError, match=r"class2: empty class folder"):
        load_dataset("image-folder", root=tmp_path)
    (tmp_path / "class2" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"broken\.png: unreadable image"):
        load_dataset("image-folder", root=tmp_path)
    one = tmp_path / "one"
    _write_folder(one, classes=1)
    with pytest.raises(DatasetError, match="found 1 class folder"):
        load_dataset("image-folder", root=one)


def _write_cifar(root: Path, n: int = 20, labels: list[int] | None = None) -> None:
    rng = np.random.default_rng(0)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {
            b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
            b"labels": labels if labels is not None else [i % 10 for i in range(n)],
        }
        with (root / name).open("wb") as fh:
            pickle.dump(batch, fh)


def test_cifar10_local_batches(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    d = load_dataset("cifar10", seed=0, root=tmp_path)
    assert d.input_shape == (3, 32, 32) and d.num_classes == 10
    assert d.sizes()["test"] == 20 and d.sizes()["train"] + d.sizes()["val"] == 100
    sub = load_dataset("cifar10", seed=0, root=tmp_path, max_train=50)
    assert sub.sizes()["train"] + sub.sizes()["val"] == 50


def test_cifar10_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"data_batch_1: file not found"):
        load_dataset("cifar10", root=tmp_path)
    _write_cifar(tmp_path, labels=[0] * 19)
    with pytest.raises(DatasetError, match=r"data_batch_1: label count mismatch: 20 images but 19"):
        load_dataset("cifar10", root=tmp_path)
    with (tmp_path / "data_batch_1").open("wb") as fh:
        pickle.dump({b"labels": [0]}, fh)
    with pytest.raises(DatasetError, match=r"data_batch_1: missing key 'data'"):
        load_dataset("cifar10", root=tmp_path)
    # A pickle that would run code on load is refused, not executed.
    with (tmp_path / "data_batch_1").open("wb") as fh:
        pickle.dump(print, fh)
    with pytest.raises(DatasetError, match="refusing to load"):
        load_dataset("cifar10", root=tmp_path)


def test_space_options_for_matches_space_to_data() -> None:
    d = load_dataset("digits", seed=0)
    assert space_options_for("mbv3", d) == {
        "in_channels": 1,
        "num_classes": 10,
        "small_input": True,
        "resolutions": (8,),
    }
    assert space_options_for("mlp", d) == {"in_features": 64, "num_classes": 10}
    tab = load_dataset("synthetic", shape=(7,), n=40, classes=2)
    with pytest.raises(DatasetError, match="needs image data"):
        space_options_for("mbv3", tab)


def test_npz_channels_last_uint8_is_read_channels_first_and_says_so(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    p = tmp_path / "hwc.npz"
    np.savez(p, x=rng.integers(0, 256, size=(30, 6, 6, 3), dtype=np.uint8), y=np.arange(30) % 3)
    d = load_dataset("npz", seed=0, path=p)
    assert d.input_shape == (3, 6, 6)
    pre = d.info["preprocessing"]
    assert (pre["layout"], pre["dtype"], pre["scale"]) == ("NHWC", "uint8", 255.0)
    assert len(pre["mean"]) == 3 and len(pre["std"]) == 3
    # Both ends could be channels: refused with the reason, not guessed.
    q = tmp_path / "ambiguous.npz"
    np.savez(q, x=rng.normal(size=(10, 3, 5, 4)), y=np.arange(10) % 2)
    with pytest.raises(DatasetError, match="cannot be told apart"):
        load_dataset("npz", path=q)
