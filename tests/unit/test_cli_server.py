"""The ``nas`` commands against the real API on PostgreSQL (served from a thread; no runner:
jobs submitted here are cancelled before a dispatcher could spend time on them)."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from nas_service.cli import create_api_key, load_job_file, main
from nas_service.client import NasClient
from nas_service.db import Database
from nas_service.db import jobs as job_repo
from nas_service.db.artifacts import find_artifact, mark_artifact_ready
from nas_service.db.results import CandidateIn, upsert_candidates
from nas_service.domain import JobStatus
from nas_service.settings import Settings
from tests.e2e.conftest import (  # noqa: F401 (fixtures)
    dispatcher,
    e2e_db,
    e2e_settings,
    live_server,
)
from tests.pg import new_key

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def key(e2e_db: Database) -> str:  # noqa: F811
    return new_key(e2e_db, f"cli-{uuid.uuid4().hex[:8]}")[1]


def run(capsys: pytest.CaptureFixture[str], url: str, key: str, *argv: str) -> tuple[int, str, str]:
    code = main(["--url", url, "--key", key, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_spaces_lists_the_registered_spaces(
    capsys: pytest.CaptureFixture[str],
    live_server: str,  # noqa: F811
    key: str,
) -> None:
    code, out, _ = run(capsys, live_server, key, "spaces")
    assert code == 0
    ids = {line.split()[0] for line in out.splitlines()[1:]}
    assert {"mbv3", "mlp"} <= ids


def test_submit_prints_the_id_then_pareto_watch_and_cancel_follow_it(
    capsys: pytest.CaptureFixture[str],
    live_server: str,  # noqa: F811
    key: str,
) -> None:
    code, out, err = run(capsys, live_server, key, "submit", str(EXAMPLES / "digits-quick.yaml"))
    assert code == 0
    job_id = out.strip()
    assert f"{live_server}/#/jobs/{job_id}" in err
    headers = {"Authorization": f"Bearer {key}"}
    job = httpx.get(f"{live_server}/api/v1/jobs/{job_id}", headers=headers).json()
    assert job["name"] == "digits quick start"

    code, out, _ = run(capsys, live_server, key, "cancel", job_id)
    assert code == 0 and job_id in out

    code, out, _ = run(capsys, live_server, key, "jobs")
    assert code == 0 and job_id in out

    code, out, _ = run(capsys, live_server, key, "pareto", job_id)
    assert code == 0 and "empty" in out

    # A job that has ended: watch prints its final line and exits non-zero (not succeeded).
    for _ in range(100):
        status = httpx.get(f"{live_server}/api/v1/jobs/{job_id}", headers=headers).json()
        if status["status"] == "cancelled":
            break
        time.sleep(0.1)
    code, _, err = run(capsys, live_server, key, "watch", job_id, "--interval", "0.2")
    assert code == 1
    assert "cancelled" in err


def test_submit_shows_the_api_field_errors_once_and_exits_1(
    capsys: pytest.CaptureFixture[str],
    live_server: str,  # noqa: F811
    key: str,
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "space: {id: mlp}\ndataset: {name: digits}\n"
        "search: {budget: 0, objectives: [{name: accuracy}, {name: flops, bound: -1}]}\n"
    )
    code, out, err = run(capsys, live_server, key, "submit", str(bad))
    assert code == 1
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("error: invalid input (HTTP 422): ")
    assert line.count("search.budget:") == line.count("search.objectives[1].bound:") == 1


def test_download_of_an_unknown_candidate_is_a_clean_404(
    capsys: pytest.CaptureFixture[str],
    live_server: str,  # noqa: F811
    key: str,
    tmp_path: Path,
) -> None:
    code, out, err = run(
        capsys, live_server, key, "download", "987654321", "--format", "onnx", "-o", str(tmp_path)
    )
    assert code == 1
    assert out == ""
    assert err == "error: no candidate 987654321 (HTTP 404)\n"
    assert list(tmp_path.iterdir()) == []


def test_keys_create_writes_a_working_key_to_the_configured_store(
    capsys: pytest.CaptureFixture[str],
    live_server: str,  # noqa: F811
    e2e_settings: Settings,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NAS_DATABASE_URL", e2e_settings.database_url)
    name = f"cli-created-{uuid.uuid4().hex[:8]}"
    assert main(["keys", "create", name]) == 0
    key = capsys.readouterr().out.strip()
    ok = httpx.get(f"{live_server}/api/v1/jobs", headers={"Authorization": f"Bearer {key}"})
    assert ok.status_code == 200
    with pytest.raises(SystemExit, match="exists already"):
        create_api_key(name, e2e_settings)


def test_commands_need_a_key(capsys: pytest.CaptureFixture[str], live_server: str) -> None:  # noqa: F811
    assert main(["--url", live_server, "--key", "", "spaces"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == "error: no API key"


def test_download_waits_through_202_until_the_export_is_made(
    capsys: pytest.CaptureFixture[str],
    live_server: str,  # noqa: F811
    e2e_db: Database,  # noqa: F811
    tmp_path: Path,
) -> None:
    owner, key = new_key(e2e_db, f"cli-dl-{uuid.uuid4().hex[:8]}")
    # A running job (so no dispatcher can claim it) with one candidate, as a runner writes it.
    with e2e_db.transaction() as s:
        job = job_repo.create_job(s, owner, {"name": "dl"}, space_id="mlp", name="dl")
        job_repo.transition(
            s, job.id, JobStatus.running, from_=[JobStatus.queued], values={"worker_id": "w"}
        )
        (cid,) = upsert_candidates(s, job.id, [CandidateIn(arch={"depth": 1}, genotype=[0])])

    result: dict[str, int] = {}
    target = tmp_path / "net.onnx"
    argv = ["--url", live_server, "--key", key, "download", str(cid), "--format", "onnx"]
    worker = threading.Thread(target=lambda: result.update(code=main([*argv, "-o", str(target)])))
    worker.start()
    art = None
    for _ in range(100):  # the first request asks for the export: a pending artifact appears
        with e2e_db.transaction() as s:
            art = find_artifact(s, cid, "subnet_onnx")
        if art is not None:
            break
        time.sleep(0.1)
    assert art is not None and art.status == "pending"
    time.sleep(0.5)
    assert worker.is_alive() and not target.exists()  # still waiting, nothing half-written

    made = tmp_path / "export.onnx"
    made.write_bytes(b"onnx bytes")
    with e2e_db.transaction() as s:
        mark_artifact_ready(
            s,
            art.id,
            uri=str(made),
            sha256=hashlib.sha256(b"onnx bytes").hexdigest(),
            size_bytes=10,
        )
    worker.join(timeout=30)
    assert result == {"code": 0}
    assert target.read_bytes() == b"onnx bytes"
    assert capsys.readouterr().out.strip() == str(target)
    with e2e_db.transaction() as s:
        job_repo.finish_job(s, job.id, "w", JobStatus.cancelled)


@pytest.mark.parametrize("name", ["digits-quick.yaml", "mbv3-latency.yaml", "reuse-supernet.yaml"])
def test_every_example_job_file_is_accepted_by_the_api(
    live_server: str,  # noqa: F811
    key: str,
    name: str,
) -> None:
    spec = load_job_file(EXAMPLES / name)
    with NasClient(live_server, key) as c:
        job = c.submit_job(spec)
        try:
            assert job["status"] == "queued"
            assert job["spec"]["search"]["objectives"] == [
                {**o, "direction": o.get("direction"), "bound": o.get("bound")}
                for o in spec["search"]["objectives"]
            ]
        finally:
            c.cancel_job(str(job["id"]))
