"""Artifacts and export requests, datasets, devices, latency tables, API keys."""

from __future__ import annotations

import threading

from nas_service.db import Database
from nas_service.db.artifacts import (
    claim_exports,
    create_artifact,
    find_artifact,
    mark_artifact_failed,
    mark_artifact_ready,
    pending_exports,
    request_export,
    reset_failed_export,
)
from nas_service.db.datasets import create_dataset, get_dataset, list_datasets
from nas_service.db.devices import get_device, list_devices, upsert_device
from nas_service.db.jobs import claim_next_job, finish_job
from nas_service.db.keys import find_key, list_keys, revoke_key
from nas_service.db.queries import get_candidate
from nas_service.db.results import CandidateIn, upsert_candidates
from nas_service.domain import ArtifactKind, JobStatus
from tests.db.helpers import make_jobs
from tests.pg import new_key


def _job_with_candidates(db: Database, n: int = 3) -> tuple[int, object, list[int]]:
    owner, (jid,) = make_jobs(db, 1)
    with db.transaction() as s:
        ids = upsert_candidates(
            s, jid, [CandidateIn(arch={"d": i}, genotype=(i,)) for i in range(n)]
        )
    return owner, jid, ids


def test_export_request_is_idempotent_and_claimed_once(db: Database) -> None:
    owner, jid, ids = _job_with_candidates(db)
    with db.transaction() as s:
        cand = get_candidate(s, ids[0], owner)
        assert cand is not None and get_candidate(s, ids[0], owner + 1) is None
        a1 = request_export(s, cand, owner, "subnet_onnx")
        a2 = request_export(s, cand, owner, "subnet_onnx")
        assert a1.id == a2.id and a1.status == "pending"
        w = request_export(s, cand, owner, "subnet_weights")
        assert w.id != a1.id
        assert [a.id for a in pending_exports(s)] == [a1.id, w.id]
        # The job is still queued: a general worker gets nothing, the job's runner gets both.
        assert claim_exports(s, "exporter") == []
    with db.transaction() as s:
        assert claim_next_job(s, "w") is not None
        assert finish_job(s, jid, "w", JobStatus.succeeded) is not None  # type: ignore[arg-type]
    got: dict[str, list[int]] = {}
    barrier = threading.Barrier(2)

    def worker(name: str) -> None:
        barrier.wait()
        with db.transaction() as s:
            got[name] = [a.id for a in claim_exports(s, name, limit=10)]

    threads = [threading.Thread(target=worker, args=(f"x{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(got["x0"] + got["x1"]) == sorted([a1.id, w.id])
    with db.transaction() as s:
        assert mark_artifact_ready(s, a1.id, uri="file:///x.onnx", sha256="ab" * 32, size_bytes=9)
        assert mark_artifact_failed(s, w.id, "parity check failed: max diff 0.1")
        ready = find_artifact(s, ids[0], "subnet_onnx")
        assert ready is not None and (ready.status, ready.size_bytes) == ("ready", 9)
        failed = find_artifact(s, ids[0], "subnet_weights")
        assert failed is not None and failed.error == "parity check failed: max diff 0.1"
        assert reset_failed_export(s, w.id)
        assert not reset_failed_export(s, w.id)
        assert [a.id for a in pending_exports(s)] == [w.id]
        assert find_artifact(s, ids[1], "subnet_onnx") is None


def test_runner_claims_exports_of_its_running_job(db: Database) -> None:
    owner, jid, ids = _job_with_candidates(db, 1)
    with db.transaction() as s:
        cand = get_candidate(s, ids[0])
        assert cand is not None
        art = request_export(s, cand, owner, "subnet_torchscript")
        assert [a.id for a in claim_exports(s, "runner", job_id=jid)] == [art.id]  # type: ignore[arg-type]
        assert claim_exports(s, "runner", job_id=jid) == []  # type: ignore[arg-type]


def test_datasets_are_per_owner(db: Database) -> None:
    a, _ = new_key(db, "a")
    b, _ = new_key(db, "b")
    with db.transaction() as s:
        art = create_artifact(s, a, ArtifactKind.dataset, uri="file:///d.npz")
        ds = create_dataset(s, a, "mine", "npz", art.id, {"num_classes": 3})
        assert get_dataset(s, ds.id, a) is not None
        assert get_dataset(s, ds.id, b) is None
        assert [d.name for d in list_datasets(s, a)] == ["mine"]
        assert list_datasets(s, b) == []


def test_devices_seeded_and_upserted(db: Database) -> None:
    with db.transaction() as s:
        assert [d.name for d in list_devices(s)] == ["cpu", "cpu-stable"]
        dev = upsert_device(s, "phone", ray_resource="phone", threads=4, description="Pixel")
        assert (dev.ray_resource, dev.threads, dev.clock, dev.paired) == ("phone", 4, "wall", False)
        dev = upsert_device(s, "phone", ray_resource="phone", threads=2, runtime="torchscript")
        assert (dev.threads, dev.runtime) == (2, "torchscript")
        assert get_device(s, "nope") is None


def test_keys_hashed_and_revocable(db: Database) -> None:
    _, key = new_key(db, "alice")
    with db.transaction() as s:
        row = find_key(s, key)
        assert row is not None and row.name == "alice"
        assert row.key_hash != key and len(row.key_hash) == 64 and key.startswith(row.prefix)
        assert find_key(s, key + "x") is None
        assert revoke_key(s, "alice") and not revoke_key(s, "alice")
        assert find_key(s, key) is None
        assert [k.name for k in list_keys(s)] == ["alice"]
