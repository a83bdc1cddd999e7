"""A real two-node Ray cluster on this machine, as the README's cluster recipe starts one:
``ray start --head`` on a free port and ``ray start --address`` for a second node, both with
token authentication (``RAY_AUTH_MODE=token``, the token in ``RAY_AUTH_TOKEN_PATH``), and the
dispatcher joining with ``NAS_RAY_ADDRESS`` and ``NAS_RAY_AUTH_TOKEN_PATH``. One job with two
training workers of one CPU each (each node offers one CPU) trains across both nodes.

The nodes run in the foreground (``--block``) as children of the test, which stops exactly
them (never ``ray stop``: that would end every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nas_service.db import Database
from tests.e2e.conftest import free_port
from tests.pg import new_key
from tests.workers.conftest_ray import db, job_row, make_spec, submit, wait_for  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))

pytestmark = pytest.mark.slow


def _stop(procs: list[subprocess.Popen[bytes]], grace_s: float = 8.0) -> None:
    """SIGTERM every node at once, then SIGKILL the process group of any still running (a
    ``ray start --block`` worker node can take half a minute to notice)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``(address, token file)`` of a 2-node cluster (1 CPU per node) with token auth."""
    token = tmp_path / "ray_token"
    token.write_text(secrets.token_hex(32))
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_USAGE_STATS_ENABLED": "0",
        "OMP_NUM_THREADS": "1",
    }
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    address = f"127.0.0.1:{port}"
    temp = Path(f"/tmp/nasrc{secrets.token_hex(3)}")  # short: Ray's socket paths are bounded
    common = ["--num-cpus=1", "--disable-usage-stats", "--block"]
    logs = tmp_path / "ray-logs"
    logs.mkdir()
    head = subprocess.Popen(
        [
            RAY,
            "start",
            "--head",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            f"--temp-dir={temp}",
            *common,
        ],
        env=env,
        stdout=(logs / "head.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    procs = [head]
    try:
        _wait_nodes(address, env, 1, head)
        worker = subprocess.Popen(
            [RAY, "start", f"--address={address}", "--node-ip-address=127.0.0.1", *common],
            env=env,
            stdout=(logs / "worker.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(worker)
        _wait_nodes(address, env, 2, worker)
        yield address, token
    finally:
        _stop(list(reversed(procs)))
        shutil.rmtree(temp, ignore_errors=True)


def _wait_nodes(address: str, env: dict[str, str], n: int, proc: subprocess.Popen[bytes]) -> None:
    """Until the cluster has ``n`` alive nodes (asked by a client with the token)."""
    probe = (
        f"import ray; ray.init(address={address!r}, log_to_driver=False); "
        "print(sum(1 for x in ray.nodes() if x['Alive']))"
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"ray start exited with {proc.returncode}"
        out = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
        )
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(n)]:
            return
        time.sleep(1)
    raise AssertionError(f"the cluster at {address} never had {n} nodes")


def test_a_two_worker_job_trains_across_both_nodes_of_a_token_cluster(
    cluster: tuple[str, Path],
    db: Database,  # noqa: F811
    tmp_path: Path,
) -> None:
    address, token = cluster
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "NAS_"))}
    env.update(
        NAS_DATABASE_URL=db.url,
        NAS_DATA_DIR=str(data_dir),
        NAS_RAY_ADDRESS=address,
        # The recipe: the dispatcher names the cluster's token file; it turns token mode on.
        NAS_RAY_AUTH_TOKEN_PATH=str(token),
        NAS_HEARTBEAT_INTERVAL_S="0.5",
        OMP_NUM_THREADS="1",
        RAY_USAGE_STATS_ENABLED="0",
    )
    spec = make_spec(
        resources={"workers": 2, "cpus_per_worker": 1},
        training={"preset": "tiny", "epochs_scale": 0.1, "batch_size": 256},
    )
    jid = submit(db, new_key(db, "cluster")[0], spec)
    log = (tmp_path / "dispatcher.log").open("wb")
    dispatcher = subprocess.Popen(
        [sys.executable, "-m", "workers.runtime.dispatcher", "--poll", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: (
                job_row(db, jid).status in ("succeeded", "failed", "cancelled")
                or dispatcher.poll() is not None
            ),
            480,
            "the job on the cluster",
            every=1.0,
        )
        row = job_row(db, jid)
        assert dispatcher.poll() is None, "the dispatcher exited (could it not join the cluster?)"
        assert row.status == "succeeded", row.error
        ranks = data_dir / "runs"
        nodes = sorted({p.read_text() for p in ranks.rglob("ray/ranks/rank-*.node")})
        assert len(list(ranks.rglob("ray/ranks/rank-*.pid"))) == 2
        assert len(nodes) == 2, "the two training workers ran on one node"
        # The dispatcher recorded the cluster's capacity for the API's submit checks.
        capacity = json.loads((data_dir / "cluster.json").read_text())
        assert [n["CPU"] for n in capacity["nodes"]] == [1.0, 1.0]
    finally:
        _stop([dispatcher], grace_s=30.0)
        log.close()
