"""The training capacity of the Ray cluster, as the service sees it without importing Ray.

Every dispatcher writes what its cluster offers (per alive node: CPUs, GPUs) to
``NAS_DATA_DIR/cluster.json`` (``write_capacity``, at start and then every
``NAS_CAPACITY_EVERY_S``); the data directory is shared by the API and every node already.
At submit, :func:`resource_errors` checks a job's ``resources`` against it: each of the
``workers`` training workers needs ``cpus_per_worker`` CPUs and ``gpus_per_worker`` GPUs on
one node (Ray Train places one worker per bundle), so the workers must fit on the nodes
together. Without a report younger than ``NAS_CAPACITY_MAX_AGE_S`` (no dispatcher has run
yet, or none for a while) the settings' limits stand in: at most ``NAS_TRAIN_MAX_WORKERS``
workers and ``NAS_TRAIN_MAX_GPUS_PER_WORKER`` GPUs each (0: no GPU job until a cluster with
GPUs reports).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nas_service.domain import FieldError, JobSpec
from nas_service.settings import Settings

CAPACITY_FILE = "cluster.json"


def capacity_path(settings: Settings) -> Path:
    return settings.data_dir / CAPACITY_FILE


def write_capacity(
    settings: Settings, nodes: Sequence[Mapping[str, float]], *, source: str = ""
) -> Path:
    """Record the alive nodes' resources (``{"CPU": .., "GPU": ..}`` each), atomically."""
    path = capacity_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "updated": time.time(),
        "source": source,
        "nodes": [
            {"CPU": float(n.get("CPU", 0.0)), "GPU": float(n.get("GPU", 0.0))} for n in nodes
        ],
    }
    fd, tmp = tempfile.mkstemp(prefix=".cluster.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(body, fh)
    os.replace(tmp, path)
    return path


def read_capacity(settings: Settings) -> list[dict[str, float]] | None:
    """The nodes of the latest fresh report, or None (no report, unreadable, too old)."""
    try:
        body: dict[str, Any] = json.loads(capacity_path(settings).read_text())
        age = time.time() - float(body["updated"])
        nodes = [{"CPU": float(n["CPU"]), "GPU": float(n["GPU"])} for n in body["nodes"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return nodes if age <= settings.capacity_max_age_s else None


def workers_that_fit(nodes: Sequence[Mapping[str, float]], cpus: float, gpus: float) -> int:
    """How many workers of ``cpus`` CPUs and ``gpus`` GPUs the nodes hold at most."""
    total = 0
    for n in nodes:
        by_cpu = math.floor(n.get("CPU", 0.0) / cpus + 1e-9) if cpus > 0 else 10**6
        by_gpu = math.floor(n.get("GPU", 0.0) / gpus + 1e-9) if gpus > 0 else 10**6
        total += min(by_cpu, by_gpu)
    return total


def resource_errors(settings: Settings, spec: JobSpec) -> list[FieldError]:
    r = spec.resources
    errors: list[FieldError] = []
    batch = spec.training.batch_size
    if r.workers > 1 and (batch or 64) % r.workers:
        what = f"training.batch_size {batch}" if batch else "the default batch size 64"
        errors.append(
            FieldError(
                "resources.workers",
                f"{r.workers} workers must divide {what}: each worker trains on an equal "
                "share of the global batch",
            )
        )
    nodes = read_capacity(settings)
    if nodes is None:
        if r.workers > settings.train_max_workers:
            errors.append(
                FieldError(
                    "resources.workers",
                    f"{r.workers} exceeds the limit {settings.train_max_workers} (no fresh "
                    "cluster capacity report; NAS_TRAIN_MAX_WORKERS)",
                )
            )
        if r.gpus_per_worker > settings.train_max_gpus_per_worker:
            errors.append(
                FieldError(
                    "resources.gpus_per_worker",
                    f"{r.gpus_per_worker:g} GPUs per worker exceeds the limit "
                    f"{settings.train_max_gpus_per_worker:g} (no fresh cluster capacity "
                    "report; NAS_TRAIN_MAX_GPUS_PER_WORKER)",
                )
            )
        return errors
    fits = workers_that_fit(nodes, r.cpus_per_worker, r.gpus_per_worker)
    if fits < r.workers:
        total_cpu = sum(n["CPU"] for n in nodes)
        total_gpu = sum(n["GPU"] for n in nodes)
        field = "resources.gpus_per_worker" if r.gpus_per_worker and fits == 0 else None
        errors.append(
            FieldError(
                field or "resources.workers",
                f"the cluster holds {fits} worker(s) of {r.cpus_per_worker:g} CPU(s) and "
                f"{r.gpus_per_worker:g} GPU(s), {r.workers} asked for ({len(nodes)} node(s), "
                f"{total_cpu:g} CPUs, {total_gpu:g} GPUs in all)",
            )
        )
    return errors
