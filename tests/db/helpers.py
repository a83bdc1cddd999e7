"""Small builders for store tests."""

from __future__ import annotations

import uuid

from nas_service.db import Database
from nas_service.db.jobs import create_job
from tests.pg import new_key

SPEC = {"space": {"id": "mlp", "options": {}}, "dataset": {"name": "digits"}}


def make_jobs(db: Database, n: int, owner: int | None = None) -> tuple[int, list[uuid.UUID]]:
    if owner is None:
        owner, _ = new_key(db, f"owner-{uuid.uuid4().hex[:8]}")
    ids = []
    with db.transaction() as s:
        for i in range(n):
            ids.append(create_job(s, owner, SPEC, space_id="mlp", name=f"job{i}").id)
    return owner, ids
