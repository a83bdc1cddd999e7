"""Datasets that stay on disk: uploads converted into the memory-mapped store, CIFAR python
batches (with a pickle that would run code refused), and registration by server-side path under
an allowed root. Real PostgreSQL, real files."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nas_service.catalog import datasets
from nas_service.db import Database
from nas_service.settings import Settings
from tests.api.client import Api, client_for, make_settings
from tests.api.uploads import image_zip
from workers.data import load_dataset


def _reason(r: Any) -> tuple[str, str]:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    (err,) = r.json()["errors"]
    return str(err["field"]), str(err["reason"])


def _stored(settings: Settings) -> list[Path]:
    d = settings.data_dir / "datasets"
    return sorted(d.iterdir()) if d.exists() else []


def _batch(n: int, seed: int, classes: int = 10) -> bytes:
    rng = np.random.default_rng(seed)
    return pickle.dumps(
        {
            b"batch_label": b"training batch",
            b"labels": [int(i % classes) for i in range(n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img{i}.png".encode() for i in range(n)],
        },
        protocol=2,  # as the CIFAR files were written
    )


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _cifar_tar(n: int = 20) -> bytes:
    members = {f"data_batch_{i}": _batch(n, i) for i in range(1, 6)}
    members["test_batch"] = _batch(n, 9)
    members["batches.meta"] = pickle.dumps(
        {b"label_names": [f"c{i}".encode() for i in range(10)]}, protocol=2
    )
    return _tar(members)


class _RunsCode:
    """Unpickled plainly, this creates the file ``path``."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


def _data(ds: dict[str, Any], uri: str = "unused") -> Any:
    """The workers' splits of a stored dataset, as the runner passes them."""
    opts = datasets.data_options(ds["format"], ds["info"], uri, {})
    assert set(opts) == {"store"}
    return load_dataset(ds["format"], seed=0, **opts)


def test_cifar_batches_upload_into_the_store(api: Api, app_settings: Settings) -> None:
    r = api.post("/api/v1/datasets", files={"file": ("cifar-10-python.tar.gz", _cifar_tar())})
    assert r.status_code == 201, r.text
    ds = r.json()
    assert (ds["name"], ds["format"]) == ("cifar-10-python", "cifar")
    info = ds["info"]
    assert (info["num_samples"], info["num_test_samples"], info["num_classes"]) == (100, 20, 10)
    assert info["classes"] == [f"c{i}" for i in range(10)]
    data = _data(ds)
    assert data.input_shape == (3, 32, 32) and data.num_classes == 10
    assert data.sizes()["test"] == 20 and data.sizes()["train"] + data.sizes()["val"] == 100
    # Stored as uint8 on disk; read normalised with training-split statistics.
    assert data.x.dtype == np.uint8 and data.scale == 255.0
    x, _ = data.rows("train", np.arange(data.sizes()["train"]))
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1.0) < 1e-3
    pre = data.info["preprocessing"]
    assert (pre["layout"], pre["dtype"], pre["scale"]) == ("NCHW", "uint8", 255.0)


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(
    api: Api, app_settings: Settings, tmp_path: Path
) -> None:
    side = tmp_path / "side-effect"
    evil = pickle.dumps({b"data": _RunsCode(side), b"labels": [0]})
    members = {f"data_batch_{i}": _batch(10, i) for i in range(1, 6)}
    members["data_batch_3"] = evil
    r = api.post(
        "/api/v1/datasets",
        files={"file": ("evil.tar.gz", _tar(members))},
        data={"format": "cifar"},
    )
    field, reason = _reason(r)
    assert field == "file" and "refusing to load posix.system" in reason
    assert "data_batch_3" in reason
    assert not side.exists()  # nothing was executed
    assert _stored(app_settings) == []  # and nothing stored
    # Plain pickle would have run it: the file is a real exploit, not a broken one.
    pickle.loads(evil)
    assert side.exists()


@pytest.mark.parametrize(
    ("members", "needle"),
    [
        ({"data_batch_1": _batch(10, 0)[:-40]}, "not a CIFAR python batch"),  # truncated
        ({"readme.html": b"hi"}, "no CIFAR training batches"),
        (
            {
                "data_batch_1": pickle.dumps(
                    {b"data": np.zeros((4, 3072), np.uint8), b"labels": [1]}
                )
            },
            "label count mismatch: 4 images but 1 labels",
        ),
        (
            {
                "data_batch_1": pickle.dumps(
                    {b"data": np.zeros((4, 10), np.uint8), b"labels": [1] * 4}
                )
            },
            "shape mismatch",
        ),
    ],
)
def test_bad_cifar_uploads_store_nothing(
    api: Api, app_settings: Settings, members: dict[str, bytes], needle: str
) -> None:
    r = api.post("/api/v1/datasets", files={"file": ("c.tar.gz", _tar(members))})
    assert needle in _reason(r)[1]
    assert _stored(app_settings) == []
    cut = _cifar_tar()[:500]  # a truncated archive
    r = api.post("/api/v1/datasets", files={"file": ("c.tar.gz", cut)})
    assert _reason(r)[0] == "file"
    assert _stored(app_settings) == []


def test_image_zip_is_decoded_into_the_store_and_other_sizes_read_the_zip(api: Api) -> None:
    r = api.post("/api/v1/datasets", files={"file": ("pets.zip", image_zip())})
    assert r.status_code == 201, r.text
    ds = r.json()
    data = _data(ds)
    assert data.input_shape == (3, 32, 32) and data.x.dtype == np.uint8
    assert sum(data.sizes().values()) == 3
    # The store holds the default size; a job asking for 16 px grayscale reads the zip.
    other = datasets.data_options(ds["format"], ds["info"], "/stored.zip", {"size": 16})
    assert other == {"size": 16, "root": "/stored.zip"}
    assert datasets.data_options(
        ds["format"], ds["info"], "/stored.zip", {"size": 32, "val_fraction": 0.3}
    ) == {"val_fraction": 0.3, "store": ds["info"]["store"]}


def test_delete_removes_the_upload_and_its_store(api: Api, app_settings: Settings) -> None:
    r = api.post("/api/v1/datasets", files={"file": ("pets.zip", image_zip())})
    assert r.status_code == 201 and len(_stored(app_settings)) == 2
    assert api.delete(f"/api/v1/datasets/{r.json()['id']}").status_code == 204
    assert _stored(app_settings) == []


@pytest.fixture
def roots_api(db: Database, tmp_path: Path) -> Iterator[tuple[Api, Settings, Path]]:
    root = tmp_path / "shared"
    root.mkdir()
    settings = make_settings(db.url, tmp_path / "data", dataset_roots=[root])
    with client_for(settings, db, "registrar") as c:
        yield c, settings, root


def test_registration_by_path_is_off_by_default(api: Api, tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((10, 4), np.float32), y=np.arange(10) % 2)
    field, reason = _reason(api.post("/api/v1/datasets/register", json={"path": str(p)}))
    assert field == "path" and "registering datasets by path is off" in reason


def test_register_a_large_npz_by_path(roots_api: tuple[Api, Settings, Path]) -> None:
    api, _, root = roots_api
    rng = np.random.default_rng(0)
    # Larger than the 2 MiB upload limit of the tests: only a path can bring it in.
    x = rng.integers(0, 256, (1200, 32, 32, 3), dtype=np.uint8)  # channels last, 3.7 MB
    np.savez(root / "big.npz", x=x, y=np.arange(1200) % 4)
    r = api.post("/api/v1/datasets/register", json={"path": f"file://{root}/big.npz"})
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["name"] == "big" and ds["info"]["layout"] == "NHWC"
    assert ds["info"]["registered_path"] == str(root / "big.npz")
    data = _data(ds)
    assert data.input_shape == (3, 32, 32)
    # The store holds the file's pixels channels first, exactly.
    i = int(data.indices["val"][5])
    raw = data.x[i]
    assert np.array_equal(raw, x[i].transpose(2, 0, 1))
    # A folder of CIFAR batches under the root, with its format named.
    folder = root / "cifar"
    folder.mkdir()
    for k in range(1, 3):
        (folder / f"data_batch_{k}").write_bytes(_batch(20, k))
    (folder / "test_batch").write_bytes(_batch(10, 7))
    r = api.post(
        "/api/v1/datasets/register", json={"path": str(folder), "format": "cifar", "name": "c"}
    )
    assert r.status_code == 201, r.text
    assert _data(r.json()).sizes()["test"] == 10
    # Deleting a registered dataset removes its store, never the owner's source.
    assert api.delete(f"/api/v1/datasets/{ds['id']}").status_code == 204
    assert (root / "big.npz").is_file()


def test_bad_registrations_are_refused_and_store_nothing(
    roots_api: tuple[Api, Settings, Path], tmp_path: Path
) -> None:
    api, settings, root = roots_api
    outside = tmp_path / "outside.npz"
    np.savez(outside, x=np.zeros((10, 4), np.float32), y=np.arange(10) % 2)
    (root / "link.npz").symlink_to(outside)
    rng = np.random.default_rng(0)
    np.savez(root / "ok.npz", x=rng.normal(size=(40, 8)).astype(np.float32), y=np.arange(40) % 2)
    (root / "truncated.npz").write_bytes((root / "ok.npz").read_bytes()[:-200])
    np.savez(root / "mismatch.npz", x=np.zeros((10, 4), np.float32), y=np.arange(9) % 2)
    np.savez(root / "ambiguous.npz", x=np.zeros((10, 3, 5, 4), np.float32), y=np.arange(10) % 2)
    cases = [
        (str(outside), "path", "outside the allowed dataset roots"),
        (str(root / "link.npz"), "path", "outside the allowed dataset roots"),
        (f"{root}/../outside.npz", "path", "outside the allowed dataset roots"),
        ("relative.npz", "path", "absolute path"),
        ("http://example.com/x.npz", "path", "only local paths"),
        (str(root / "missing.npz"), "path", "no such file"),
        (str(root / "truncated.npz"), "file", "not a readable .npz"),
        (str(root / "mismatch.npz"), "file", "10 samples in x but 9 labels"),
        (str(root / "ambiguous.npz"), "file", "cannot be told apart"),
    ]
    for path, field, needle in cases:
        got_field, reason = _reason(api.post("/api/v1/datasets/register", json={"path": path}))
        assert (got_field, needle in reason) == (field, True), (path, reason)
    assert _stored(settings) == []
    assert api.get("/api/v1/datasets").json()["items"] == []
