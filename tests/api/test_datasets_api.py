"""Dataset uploads: validation of .npz and zipped image folders, limits, ownership."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nas_service.settings import Settings
from tests.api.client import Api
from tests.api.specs import spec
from tests.api.uploads import image_zip, multipart_body, npz_bytes, png, zip_bytes


def _upload(api: Api, filename: str, data: bytes, **fields: str) -> Any:
    return api.post("/api/v1/datasets", files={"file": (filename, data)}, data=fields)


def _reason(r: Any) -> str:
    assert r.status_code == 422, r.text
    (err,) = r.json()["errors"]
    return str(err["field"]) + ": " + str(err["reason"])


def _leftovers(settings: Settings) -> list[Path]:
    tmp = settings.data_dir / "tmp"
    return list(tmp.iterdir()) if tmp.exists() else []


def test_npz_upload_then_use_in_a_job(api: Api, other_api: Api, app_settings: Settings) -> None:
    r = _upload(api, "blobs.npz", npz_bytes(), name="blobs")
    assert r.status_code == 201, r.text
    ds = r.json()
    assert r.headers["location"] == f"/api/v1/datasets/{ds['id']}"
    assert (ds["name"], ds["format"]) == ("blobs", "npz")
    info = ds["info"]
    assert (info["num_samples"], info["num_classes"], info["class_counts"]) == (30, 3, [10, 10, 10])
    assert (info["input_shape"], info["in_channels"]) == ([1, 8, 8], 1)
    stored = sorted((app_settings.data_dir / "datasets").iterdir(), key=lambda p: p.is_dir())
    assert len(stored) == 2 and stored[0].stat().st_size == info["size_bytes"]
    # Converted at upload into the on-disk store the workers map: samples as stored (float32
    # here), labels, metadata with the per-channel statistics.
    assert stored[1].is_dir() and info["store"] == str(stored[1])
    meta = json.loads((stored[1] / "meta.json").read_text())
    assert (meta["num_samples"], meta["sample_shape"], meta["dtype"]) == (30, [1, 8, 8], "float32")
    x = np.load(stored[1] / "x.npy", mmap_mode="r")
    assert x.shape == (30, 1, 8, 8) and len(meta["mean"]) == 1 and len(meta["std"]) == 1
    assert _leftovers(app_settings) == []
    assert [d["id"] for d in api.get("/api/v1/datasets").json()["items"]] == [ds["id"]]
    assert api.get(f"/api/v1/datasets/{ds['id']}").json()["info"] == info
    # Someone else's dataset does not exist for them, in reads and in job specs.
    assert other_api.get(f"/api/v1/datasets/{ds['id']}").status_code == 404
    assert other_api.get("/api/v1/datasets").json()["items"] == []
    theirs = other_api.post("/api/v1/jobs", json=spec(dataset={"id": ds["id"]}))
    assert theirs.status_code == 422 and theirs.json()["errors"][0]["field"] == "dataset.id"
    # The space must fit the dataset: 10 classes in the space, 3 in the data.
    mlp3 = {"id": "mlp", "options": {"in_features": 64, "num_classes": 3}}
    r = api.post("/api/v1/jobs", json=spec(dataset={"id": ds["id"]}))
    assert "space.options.num_classes" in {e["field"] for e in r.json()["errors"]}
    mbv3 = {
        "id": "mbv3",
        "options": {"num_classes": 3, "in_channels": 1, "small_input": True, "resolutions": [8]},
    }
    ok = api.post(
        "/api/v1/jobs",
        json=spec(
            dataset={"id": ds["id"]}, space=mbv3, **{"search.objectives": [{"name": "accuracy"}]}
        ),
    )
    assert ok.status_code == 201, ok.text
    assert mlp3  # the tabular space would need in_features=64 data; covered above
    dup = _upload(api, "again.npz", npz_bytes(), name="blobs")
    assert dup.status_code == 409 and dup.json()["code"] == "conflict"


def test_image_folder_zip(api: Api) -> None:
    r = _upload(api, "pets.zip", image_zip())
    assert r.status_code == 201, r.text
    ds = r.json()
    assert (ds["name"], ds["format"]) == ("pets", "image-folder")
    assert ds["info"]["classes"] == ["cat", "dog"] and ds["info"]["class_counts"] == [2, 1]
    assert ds["info"]["image_sizes"] == [[6, 5]]
    # Loader options are checked against the dataset's format when a job is submitted; the
    # stored file is the service's choice, never an option.
    mbv3 = {
        "id": "mbv3",
        "options": {"num_classes": 2, "in_channels": 1, "small_input": True, "resolutions": [16]},
    }
    one_objective = {"search.objectives": [{"name": "accuracy"}]}

    def submit(options: dict[str, Any]) -> Any:
        body = spec(dataset={"id": ds["id"], "options": options}, space=mbv3, **one_objective)
        return api.post("/api/v1/jobs", json=body)

    bad = submit({"root": "/etc", "size": 2, "grayscale": "maybe"})
    assert bad.status_code == 422
    errors = {e["field"]: e["reason"] for e in bad.json()["errors"]}
    assert set(errors) == {"dataset.options.root", "dataset.options.grayscale"}
    assert errors["dataset.options.root"] == (
        "unknown option for image-folder datasets; "
        "allowed: ['grayscale', 'size', 'test_fraction', 'val_fraction']"
    )
    ok = submit({"size": 16, "grayscale": True, "val_fraction": 0.3})
    assert ok.status_code == 201, ok.text
    assert ok.json()["spec"]["dataset"]["options"] == {
        "size": 16,
        "grayscale": True,
        "val_fraction": 0.3,
    }
    # The size rule is checked once the options' names and types are right.
    r = submit({"size": 2})
    assert r.status_code == 422 and "4..512" in r.json()["errors"][0]["reason"]


@pytest.mark.parametrize(
    ("filename", "data", "needle"),
    [
        ("x.npz", b"not a zip at all", "not a readable .npz"),
        ("x.npz", npz_bytes(y=np.arange(29) % 3), "30 samples in x but 29 labels"),
        ("x.npz", npz_bytes(y=np.arange(30) % 3 + 1), "no sample for [0]"),
        ("x.npz", npz_bytes(y=np.zeros(30, dtype=int)), "at least 2"),
        ("x.npz", npz_bytes(x=np.full((30, 4), np.nan)), "NaN or infinite"),
        ("x.npz", npz_bytes(x=np.zeros((30, 2, 2, 2, 2))), "expected (N, D)"),
        ("x.npz", npz_bytes(y=np.ones((30, 2))), "1-D class labels"),
        ("x.npz", npz_bytes(y=np.arange(30) * 0.5), "integer class labels"),
        ("x.npz", zip_bytes({"y.npy": b""}), "missing array 'x'"),
        ("x.npz", zip_bytes({"x.npy": b"junk", "y.npy": b""}), "not a readable .npz"),
        ("x.txt", b"abc", "cannot tell the format"),
        ("x.zip", zip_bytes({"../evil/1.png": png(1), "a/1.png": png(2)}), "escape"),
        ("x.zip", zip_bytes({"/etc/1.png": png(1)}), "absolute paths"),
        ("x.zip", zip_bytes({"a\\..\\1.png": png(1)}), "backslashes"),
        ("x.zip", zip_bytes({"a/1.png": png(1), "b/1.txt": b"hi"}), "not an image"),
        ("x.zip", zip_bytes({"a/1.png": png(1), "b/2.png": b"garbage"}), "unreadable image"),
        ("x.zip", zip_bytes({"a/1.png": png(1)}), "1 class folder"),
        ("x.zip", zip_bytes({"top/a/1.png": png(1)}), "directly in a class folder"),
        ("x.zip", b"PK\x03\x04 truncated", "not a readable zip"),
    ],
)
def test_bad_files_are_rejected(
    api: Api, app_settings: Settings, filename: str, data: bytes, needle: str
) -> None:
    reason = _reason(_upload(api, filename, data))
    assert needle in reason
    assert _leftovers(app_settings) == []
    assert not (app_settings.data_dir / "datasets").exists() or not any(
        (app_settings.data_dir / "datasets").iterdir()
    )


def test_zip_bombs_are_refused(api: Api) -> None:
    # 3 MiB of zeros deflate to a few KiB: ratio far above the 200x limit.
    bomb = zip_bytes({"a/1.png": png(1), "b/1.png": b"\0" * (3 << 20)})
    assert "possible zip bomb" in _reason(_upload(api, "bomb.zip", bomb))
    # Many moderately compressible members: each ratio is fine, the total is not (8 MiB cap).
    rng = np.random.default_rng(0)
    chunk = rng.integers(0, 2, size=1 << 20, dtype=np.uint8).tobytes()
    wide = zip_bytes({f"c{i}/x.png": chunk for i in range(9)})
    assert len(wide) < 2 << 20
    assert "uncompressed; the limit is" in _reason(_upload(api, "wide.zip", wide))
    # npz files are zips too.
    npz_bomb = zip_bytes({"x.npy": b"\0" * (3 << 20), "y.npy": b""})
    assert "possible zip bomb" in _reason(_upload(api, "b.npz", npz_bomb))


def test_oversized_upload_is_413_and_leaves_nothing(api: Api, app_settings: Settings) -> None:
    big = np.random.default_rng(1).bytes(3 << 20)  # over the 2 MiB test limit
    r = _upload(api, "big.npz", big)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    assert _leftovers(app_settings) == []
    # Without a Content-Length (chunked), the limit is enforced while streaming.
    body = multipart_body("XyZ", "big.npz", big)

    def chunks() -> Any:
        for i in range(0, len(body), 64 * 1024):
            yield body[i : i + 64 * 1024]

    r = api.post(
        "/api/v1/datasets",
        content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=XyZ"},
    )
    assert r.status_code == 413
    assert _leftovers(app_settings) == []


def test_upload_needs_multipart_and_a_file(api: Api) -> None:
    r = api.post("/api/v1/datasets", json={"file": "x"})
    assert _reason(r).startswith("file: send the dataset as multipart/form-data")
    r = api.post("/api/v1/datasets", data={"name": "x"}, files={"other": ("a.npz", b"1")})
    assert _reason(r) == "file: the form has no 'file' part"
    r = _upload(api, "ok.npz", npz_bytes(), name="../../etc")
    assert _reason(r).startswith("name: ")
    r = _upload(api, "ok.npz", npz_bytes(), format="parquet")
    assert _reason(r).startswith("format: unknown format")


def test_npz_with_test_split(api: Api) -> None:
    data = npz_bytes(x_test=np.zeros((6, 1, 8, 8), np.float32), y_test=np.array([0, 1, 2, 0, 1, 2]))
    r = _upload(api, "split.npz", data)
    assert r.status_code == 201 and r.json()["info"]["num_test_samples"] == 6
    bad = npz_bytes(x_test=np.zeros((2, 1, 4, 4), np.float32), y_test=np.array([0, 1]))
    assert "x_test samples are" in _reason(_upload(api, "bad.npz", bad))
    assert zipfile.is_zipfile  # keep the import meaningful for readers of the builders


def test_a_channels_last_upload_is_stored_with_its_layout_and_an_ambiguous_one_refused(
    api: Api,
) -> None:
    rng = np.random.default_rng(0)
    hwc = npz_bytes(n=20, classes=2, x=rng.integers(0, 256, (20, 6, 6, 3), dtype=np.uint8))
    r = api.post("/api/v1/datasets", files={"file": ("hwc.npz", hwc)}, data={"name": "hwc"})
    assert r.status_code == 201, r.text
    info = r.json()["info"]
    assert (info["layout"], info["input_shape"], info["in_channels"]) == ("NHWC", [3, 6, 6], 3)
    odd = npz_bytes(n=20, classes=2, x=rng.normal(size=(20, 3, 5, 4)).astype(np.float32))
    r = api.post("/api/v1/datasets", files={"file": ("odd.npz", odd)}, data={"name": "odd"})
    assert r.status_code == 422
    (err,) = r.json()["errors"]
    assert err["field"] == "file" and "cannot be told apart" in err["reason"]
    assert [d["name"] for d in api.get("/api/v1/datasets").json()["items"]] == ["hwc"]
