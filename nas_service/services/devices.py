"""Devices (latency targets) for the admin command: register or replace one, list, remove."""

from __future__ import annotations

from nas_service.db import Database, Device
from nas_service.db import devices as device_repo
from nas_service.domain import Conflict, NotFound
from nas_service.domain.device import DeviceSpec


def register_device(db: Database, **values: object) -> DeviceSpec:
    """Validate ``values`` (``ValidationFailed`` names each bad field) and create the device, or
    replace the settings of the one with that name; returns what is stored."""
    spec = DeviceSpec.parse(**values)
    with db.transaction() as s:
        row = device_repo.upsert_device(s, **spec.model_dump())
        return device_spec(row)


def list_devices(db: Database) -> list[DeviceSpec]:
    with db.transaction() as s:
        return [device_spec(d) for d in device_repo.list_devices(s)]


def remove_device(db: Database, name: str) -> None:
    """Remove a device. Jobs name devices in their spec, so one that active jobs target is
    refused; its latency tables go with it."""
    with db.transaction() as s:
        row = device_repo.get_device(s, name)
        if row is None:
            raise NotFound(f"device '{name}' not found")
        users = device_repo.active_jobs_targeting(s, name)
        if users:
            raise Conflict(f"device '{name}' is targeted by active jobs: {users}")
        s.delete(row)


def device_spec(row: Device) -> DeviceSpec:
    return DeviceSpec.model_validate({k: getattr(row, k) for k in DeviceSpec.model_fields})
