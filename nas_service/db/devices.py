"""Latency targets: one row per device with the measurement settings the workers copy into
their ``DeviceInfo`` (torch device, threads, batch, clock, runtime, the Ray resource of the
nodes that drive it)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from nas_service.db.dialect import insert_for
from nas_service.db.models import Device, Job
from nas_service.domain.states import TERMINAL


def list_devices(s: Session, *, after: str | None = None, limit: int | None = None) -> list[Device]:
    """By name; ``after``: the last name of the previous page."""
    q = select(Device).order_by(Device.name)
    if after is not None:
        q = q.where(Device.name > after)
    return list(s.scalars(q if limit is None else q.limit(limit)))


def get_device(s: Session, name: str) -> Device | None:
    return s.get(Device, name)


def upsert_device(
    s: Session,
    name: str,
    *,
    torch_device: str = "cpu",
    threads: int = 1,
    batch_size: int = 1,
    ray_resource: str | None = None,
    description: str = "",
    warmup: int = 10,
    repeats: int = 50,
    clock: str = "wall",
    runtime: str = "eager",
    paired: bool = False,
) -> Device:
    """Create or replace a device (validate with ``nas_service.domain.DeviceSpec`` first)."""
    values = {
        "name": name,
        "torch_device": torch_device,
        "threads": threads,
        "batch_size": batch_size,
        "ray_resource": ray_resource,
        "description": description,
        "warmup": warmup,
        "repeats": repeats,
        "clock": clock,
        "runtime": runtime,
        "paired": paired,
    }
    ins = insert_for(s, Device).values(**values)
    s.execute(
        ins.on_conflict_do_update(
            index_elements=["name"], set_={k: v for k, v in values.items() if k != "name"}
        )
    )
    dev = s.scalars(
        select(Device).where(Device.name == name).execution_options(populate_existing=True)
    ).one()
    return dev


def active_jobs_targeting(s: Session, device: str) -> list[str]:
    """Ids of the queued or running jobs whose spec names ``device``."""
    q = select(Job.id, Job.spec).where(Job.status.not_in([str(t) for t in TERMINAL]))
    return [str(i) for i, spec in s.execute(q) if device in (spec or {}).get("devices", [])]
