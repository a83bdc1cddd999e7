"""Devices: validation of their measurement settings, the admin commands that register, list and
remove them, and what the API then lists (real PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas_service.admin import main as admin
from nas_service.db import Database
from nas_service.domain import ValidationFailed
from nas_service.domain.device import DeviceSpec
from tests.api.client import Api, make_settings
from tests.api.specs import spec


def test_device_spec_names_every_bad_field() -> None:
    with pytest.raises(ValidationFailed) as err:
        DeviceSpec.parse(name="Bad Name", threads=0, clock="sundial", runtime="onnx", repeats=0)
    fields = {e.field for e in err.value.errors}
    assert fields == {"name", "threads", "clock", "runtime", "repeats"}
    with pytest.raises(ValidationFailed) as err:
        DeviceSpec.parse(name="gpu", torch_device="cuda", clock="cpu")
    (only,) = err.value.errors
    assert (only.field, only.reason[:37]) == ("device", "clock 'cpu' times the calling thread:")
    with pytest.raises(ValidationFailed, match="threads 1, got 'cpu' and 4"):
        DeviceSpec.parse(name="wide", threads=4, clock="cpu")
    ok = DeviceSpec.parse(name="edge-1", torch_device="cuda:1", threads=2, runtime="torchscript")
    assert (ok.clock, ok.paired, ok.warmup, ok.repeats) == ("wall", False, 10, 50)


def test_admin_registers_lists_replaces_and_removes_devices(
    api: Api, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(db.url, Path("."))
    argv = ["add-device", "pixel7", "--ray-resource", "device:pixel7", "--threads", "4",
            "--runtime", "torchscript", "--repeats", "20", "--description", "a phone"]  # fmt: skip
    assert admin(argv, settings) == 0
    assert "device 'pixel7' registered" in capsys.readouterr().err
    listed = {d["name"]: d for d in api.get("/api/v1/devices").json()["items"]}
    assert set(listed) == {"cpu", "cpu-stable", "pixel7"}
    assert listed["pixel7"] == {
        "name": "pixel7",
        "torch_device": "cpu",
        "threads": 4,
        "batch_size": 1,
        "ray_resource": "device:pixel7",
        "description": "a phone",
        "warmup": 10,
        "repeats": 20,
        "clock": "wall",
        "runtime": "torchscript",
        "paired": False,
    }
    # Bad settings are refused field by field, and the stored device is untouched.
    assert admin(["add-device", "pixel7", "--clock", "cpu", "--threads", "4"], settings) == 1
    assert "clock 'cpu' times the calling thread" in capsys.readouterr().err
    assert admin(["add-device", "pixel7", "--runtime", "tflite"], settings) == 1
    err = capsys.readouterr().err
    assert "runtime: unknown runtime 'tflite'; allowed: ['eager', 'torchscript']" in err
    listed = {d["name"]: d for d in api.get("/api/v1/devices").json()["items"]}
    assert listed["pixel7"]["threads"] == 4 and listed["pixel7"]["runtime"] == "torchscript"
    # Registering again replaces every setting.
    argv = ["add-device", "pixel7", "--clock", "cpu", "--paired", "--warmup", "2"]
    assert admin(argv, settings) == 0
    assert admin(["list-devices"], settings) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split("\t")[0] for ln in lines] == ["cpu", "cpu-stable", "pixel7"]
    assert lines[2].split("\t")[1:] == [
        "cpu x1 batch 1", "2+50 runs, eager, cpu clock, paired", "-"
    ]  # fmt: skip
    # A device that a queued job targets cannot be removed; once the job is gone it can.
    job = api.post("/api/v1/jobs", json=spec(devices=["cpu", "pixel7"]))
    assert job.status_code == 201, job.text
    assert admin(["remove-device", "--name", "pixel7"], settings) == 1
    assert f"targeted by active jobs: ['{job.json()['id']}']" in capsys.readouterr().err
    assert api.post(f"/api/v1/jobs/{job.json()['id']}/cancel").status_code == 200
    assert admin(["remove-device", "--name", "pixel7"], settings) == 0
    assert admin(["remove-device", "--name", "pixel7"], settings) == 1
    assert "device 'pixel7' not found" in capsys.readouterr().err
    names = [d["name"] for d in api.get("/api/v1/devices").json()["items"]]
    assert names == ["cpu", "cpu-stable"]
