"""Fixtures for the runner and dispatcher tests: a local Ray shared by the test process, the
store (tests/pg.py), settings pointing at both, and helpers to create jobs.

Import what a test module needs::

    from tests.workers.conftest_ray import ray_local, settings  # noqa: F401
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nas_service.db import Database
from nas_service.db import jobs as jobs_repo
from nas_service.domain import JobSpec
from nas_service.settings import Settings
from tests.pg import db, new_key  # noqa: F401

# A job small enough for two shared cores: a narrow MLP on the digits, one epoch per phase.
TINY_SPEC: dict[str, Any] = {
    "space": {"id": "mlp", "options": {"widths": [16, 24, 32], "depths": [1, 2, 3]}},
    "dataset": {"name": "digits"},
    "training": {"preset": "tiny", "epochs_scale": 0.1, "batch_size": 256},
    "search": {
        "algorithm": "evolution",
        "budget": 12,
        "population": 6,
        "objectives": [{"name": "accuracy"}, {"name": "flops"}],
    },
    "devices": ["cpu"],
    "seed": 0,
}


# A custom resource of the local test node, standing for "a node wired to a device".
TEST_DEVICE_RESOURCE = "nas_test_device"
# GPUs the local test node declares (it has none): Ray schedules a task that asks for one,
# and hands it a GPU id, which is what placement tests check; no test computes on it.
TEST_NODE_GPUS = 1


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    import ray

    previous = signal.getsignal(signal.SIGTERM)
    started = False
    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            num_gpus=TEST_NODE_GPUS,
            resources={TEST_DEVICE_RESOURCE: 1},
            include_dashboard=False,
            log_to_driver=False,
        )
        started = True
    signal.signal(signal.SIGTERM, previous)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:  # noqa: F811
    return Settings(
        database_url=db.url,
        data_dir=tmp_path / "data",
        heartbeat_interval_s=0.5,
        stale_after_s=5.0,
    )


def make_spec(**overrides: Any) -> dict[str, Any]:
    spec = {**TINY_SPEC, **overrides}
    return JobSpec.model_validate(spec).model_dump(mode="json", exclude_none=True)


def submit(db: Database, owner_id: int, spec: dict[str, Any] | None = None) -> uuid.UUID:  # noqa: F811
    body = spec or make_spec()
    with db.transaction() as s:
        job = jobs_repo.create_job(s, owner_id, body, space_id=body["space"]["id"])
        return job.id


def owner(db: Database) -> int:  # noqa: F811
    return new_key(db, f"test-{uuid.uuid4().hex[:8]}")[0]


def wait_for(cond: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> float:
    """Seconds it took for ``cond`` to hold; fails the test after ``timeout``."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - t0


def job_row(db: Database, job_id: uuid.UUID) -> Any:  # noqa: F811
    with db.transaction() as s:
        job = jobs_repo.get_job(s, job_id)
        assert job is not None
        return job


def events(db: Database, job_id: uuid.UUID) -> list[Any]:  # noqa: F811
    with db.transaction() as s:
        return jobs_repo.list_events(s, job_id, limit=10_000)
