"""The job page while a job runs, without a training run: a worker's writes are made through the
store's own repository functions (the ones the runner's sink calls), step by step, while the
page is open, and the page must follow them without a reload.

Runs on its own database and server so that a real dispatcher elsewhere in the session can
never claim this job.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nas_service.db import Database
from nas_service.db import jobs as job_repo
from nas_service.db.artifacts import find_artifact, mark_artifact_ready
from nas_service.db.results import CandidateIn, MetricRow, add_train_metrics, upsert_candidates
from nas_service.db.results import set_pareto as store_front
from nas_service.domain import CandidateSource, JobStatus
from nas_service.settings import Settings
from tests.e2e.conftest import screenshot, serve_app, sign_in
from tests.pg import new_key, private_database

pytestmark = pytest.mark.browser
WORKER = "scripted-worker"
SPEC = {
    "name": "live page",
    "space": {"id": "mlp", "options": {}},
    "dataset": {"name": "digits"},
    "search": {
        "algorithm": "evolution",
        "budget": 20,
        "objectives": [{"name": "accuracy"}, {"name": "flops", "bound": 30000}],
    },
}


@pytest.fixture(scope="module")
def store_and_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, str]]:
    with private_database("e2e_live") as db:
        settings = Settings(database_url=db.url, data_dir=tmp_path_factory.mktemp("live"))
        with serve_app(settings) as url:
            yield db, url


def candidate(i: int, *, acc: float | None, flops: int, measured: bool, ok: bool = True) -> Any:
    return CandidateIn(
        arch={"depth": 1 + i % 3, "l1.width": 32 * (1 + i)},
        genotype=[i % 3, i],
        arch_short=f"d{1 + i % 3}-w{32 * (1 + i)}",
        accuracy=acc if measured else None,
        predicted_accuracy=acc,
        flops=flops,
        params=flops + 10,
        source=CandidateSource.measured if measured else CandidateSource.predicted,
        feasible=ok,
    )


def test_the_job_page_follows_a_running_job_and_its_buttons_act(
    store_and_url: tuple[Database, str], new_page: Callable[[str], Any], tmp_path: Path
) -> None:
    db, url = store_and_url
    key = new_key(db, f"live-{uuid.uuid4().hex[:6]}")[1]
    auth = {"Authorization": f"Bearer {key}"}
    job_id = httpx.post(f"{url}/api/v1/jobs", json=SPEC, headers=auth).json()["id"]
    jid = uuid.UUID(job_id)

    page = new_page(url)
    pareto_statuses: list[int] = []
    page.on("response", lambda r: "/pareto" in r.url and pareto_statuses.append(r.status))
    sign_in(page, key)
    page.click(f"#jobs-body tr[data-job-id='{job_id}'] a")
    page.wait_for_selector("#job-status [data-status='queued']")
    assert page.is_enabled("#cancel-job") and page.is_disabled("#retry-job")
    page.evaluate("window.__sameDocument = true")

    # The worker claims it and reports a training epoch with its sampled-FLOPs histogram.
    with db.transaction() as s:
        job_repo.transition(
            s, jid, JobStatus.running, from_=[JobStatus.queued], values={"worker_id": WORKER}
        )
        job_repo.heartbeat(
            s, jid, WORKER, stage="training", progress={"global_epoch": 1, "total_epochs": 4}
        )
        hist = {"edges": [1000.0, 2000.0, 3000.0, 4000.0], "counts": [5, 9, 2]}
        add_train_metrics(
            s,
            jid,
            [
                MetricRow(
                    seq=i,
                    phase="full",
                    epoch=i + 1,
                    metrics={
                        "losses": {"largest": 2.0 / (i + 1)},
                        "lr": 0.1,
                        "flops_histogram": hist,
                    },
                )
                for i in range(3)
            ],
        )
    page.wait_for_selector("#job-status [data-status='running']")
    page.wait_for_selector("#curves-plot svg path.series")
    assert page.inner_text("#job-stage") == "training (1 of 5)"
    assert page.get_attribute("#job-progress [role=progressbar]", "aria-valuenow") == "25"
    # Training is 1 of 4 epochs: the whole job (five stages) is a twentieth done.
    assert page.get_attribute("#job-training [role=progressbar]", "aria-valuenow") == "25"
    assert page.get_attribute("#job-overall [role=progressbar]", "aria-valuenow") == "5"

    # A report of one phase's epochs only: the end of phase 1 is not the end of training.
    with db.transaction() as s:
        job_repo.heartbeat(
            s,
            jid,
            WORKER,
            stage="training",
            progress={"phase": "full", "phase_index": 0, "epoch": 1, "epochs": 1},
        )
    page.wait_for_selector("#job-training-text:has-text('phase 1 (full), epoch 1 of 1')")
    bar = page.locator("#job-training [role=progressbar]")
    assert bar.get_attribute("aria-valuenow") is None  # unknown, not 100%
    assert "indeterminate" in (bar.get_attribute("class") or "")
    assert page.get_attribute("#job-overall [role=progressbar]", "aria-valuenow") == "0"
    assert page.locator("#flops-hist rect.bar").count() == 3

    # Searching: candidates (one with no accuracy at all, one infeasible) and a front.
    with db.transaction() as s:
        job_repo.heartbeat(
            s, jid, WORKER, stage="searching", progress={"evaluated": 6, "budget": 20}
        )
        ids = upsert_candidates(
            s,
            jid,
            [
                candidate(0, acc=0.71, flops=8000, measured=True),
                candidate(1, acc=0.83, flops=16000, measured=True),
                candidate(2, acc=0.78, flops=24000, measured=False),
                candidate(3, acc=0.80, flops=40000, measured=True, ok=False),
                candidate(4, acc=0.60, flops=20000, measured=True),
                candidate(5, acc=None, flops=12000, measured=False),
            ],
        )
        store_front(s, jid, ids[:2], hypervolume=0.41, evaluations=6, source="predicted")
    page.wait_for_selector("#pareto-plot svg .point.pareto")
    page.wait_for_function("document.querySelectorAll('#pareto-plot .point').length === 5")
    # Searching is the third of five stages, 6 of 20 evaluated: (2 + 0.3) / 5 of the job.
    assert page.get_attribute("#job-overall [role=progressbar]", "aria-valuenow") == "46"
    assert page.get_attribute("#job-training [role=progressbar]", "aria-valuenow") == "100"
    assert page.locator("#pareto-plot .point.pareto").count() == 2
    assert page.locator("#pareto-plot .point.infeasible").count() == 1
    assert page.locator("#pareto-plot .point.predicted").count() == 1
    assert page.locator("#pareto-plot line.constraint[data-axis='x']").count() == 1
    assert "1 without a value" in page.inner_text("#pareto-note")  # drawn nowhere, not at 0
    assert page.locator("#hv-plot svg path.series[data-name='predicted']").count() == 1
    page.hover(f"#pareto-plot .point[data-id='{ids[1]}']")
    tip = page.inner_text("#pareto-plot .tooltip")
    assert "d2-w64" in tip and "0.83" in tip and "16,000" in tip
    screenshot(page, "job-running.png")

    # Download: the export is requested (202, the page keeps retrying), then made by the worker.
    page.click(f"#pareto-table button[data-candidate='{ids[1]}'][data-format='weights']")
    row = f"#pareto-table tr[data-candidate-id='{ids[1]}'] .download-status"
    page.wait_for_selector(f"{row}:has-text('exporting')")
    exported = tmp_path / "export.pt"
    exported.write_bytes(b"exported subnet weights")
    with page.expect_download(timeout=20_000) as dl, db.transaction() as s:
        art = find_artifact(s, ids[1], "subnet_weights")
        assert art is not None and art.status == "pending"
        mark_artifact_ready(
            s,
            art.id,
            uri=str(exported),
            sha256=hashlib.sha256(exported.read_bytes()).hexdigest(),
            size_bytes=exported.stat().st_size,
        )
    saved = tmp_path / "saved.pt"
    dl.value.save_as(saved)
    assert saved.read_bytes() == b"exported subnet weights"
    assert dl.value.suggested_filename.endswith(f"-{ids[1]}.pt")
    page.wait_for_selector(f"{row}:has-text('saved')")

    # Nothing changed: the page keeps polling with If-None-Match and gets 304s.
    page.wait_for_timeout(3500)
    assert 304 in pareto_statuses

    # Choosing the axes: latency was never measured, so nothing is plotted (no zeros).
    page.select_option("#pareto-y", "latency_ms")
    assert page.locator("#pareto-plot .point").count() == 0
    assert "No point has both" in page.inner_text("#pareto-plot")
    page.select_option("#pareto-y", "accuracy")
    page.select_option("#pareto-x", "params")
    assert page.locator("#pareto-plot .point").count() == 5

    # Cancel, once confirmed: the API flags the running job; the worker honours it.
    page.click("#cancel-job")
    page.click("#confirm-yes")
    page.wait_for_selector("#events li[data-kind='cancel_requested']")
    assert page.is_disabled("#cancel-job")
    with db.transaction() as s:
        job_repo.finish_job(s, jid, WORKER, JobStatus.cancelled, message="stopped on request")
    page.wait_for_selector("#job-status [data-status='cancelled']")
    page.wait_for_selector("#poll-state[data-stopped='true']")

    # Retry puts it back in the queue and the page starts following it again.
    assert page.is_enabled("#retry-job")
    page.click("#retry-job")
    page.wait_for_selector("#job-status [data-status='queued']")
    assert page.evaluate("window.__sameDocument") is True
    assert httpx.get(f"{url}/api/v1/jobs/{job_id}", headers=auth).json()["status"] == "queued"

    page.click("a[href='#/jobs']")
    page.wait_for_selector(f"#jobs-body tr[data-job-id='{job_id}'] [data-status='queued']")
    screenshot(page, "jobs.png")


def test_a_job_without_a_feasible_subnet_says_why_and_accuracies_name_their_split(
    store_and_url: tuple[Database, str], new_page: Callable[[str], Any]
) -> None:
    """A finished job whose bounds nothing met: the job list and the job page do not show a
    plain green success; the Pareto panel shows the outcome's reason and the closest
    candidates. A measured candidate's held-out test accuracy appears beside its validation
    accuracy in the tooltip."""
    db, url = store_and_url
    key = new_key(db, f"nofeas-{uuid.uuid4().hex[:6]}")[1]
    auth = {"Authorization": f"Bearer {key}"}
    job_id = httpx.post(f"{url}/api/v1/jobs", json=SPEC, headers=auth).json()["id"]
    jid = uuid.UUID(job_id)
    row = candidate(1, acc=0.91, flops=90000, measured=True, ok=False)
    row.test_accuracy = 0.8765
    with db.transaction() as s:
        job_repo.transition(
            s, jid, JobStatus.running, from_=[JobStatus.queued], values={"worker_id": WORKER}
        )
        (cid,) = upsert_candidates(s, jid, [row])
    message = (
        "no feasible subnet on cpu: the smallest network measures 41,000 MACs, above the "
        "30,000 MACs bound (flops<=30000)"
    )
    outcome = {
        "code": "no_feasible_subnet",
        "message": message,
        "devices": {
            "cpu": {
                "code": "no_feasible_subnet",
                "front": 0,
                "closest": [
                    {
                        "id": cid,
                        "arch_short": "d2-w64",
                        "source": "measured",
                        "violation": 2.0,
                        "metrics": {"accuracy": 0.91, "flops": 90000.0},
                    }
                ],
            }
        },
    }
    with db.transaction() as s:
        job_repo.finish_job(s, jid, WORKER, JobStatus.succeeded, outcome=outcome)

    page = new_page(url)
    sign_in(page, key)
    badge = page.locator(f"#jobs-body tr[data-job-id='{job_id}'] [data-status='succeeded']")
    badge.wait_for()
    assert badge.inner_text() == "succeeded: no feasible subnet"
    page.click(f"#jobs-body tr[data-job-id='{job_id}'] a")
    page.wait_for_selector("#pareto-outcome:not([hidden])")
    text = page.inner_text("#pareto-outcome")
    assert "No feasible subnet." in text and message in text
    assert page.locator("#outcome-closest li").count() == 1
    assert f"#{cid} d2-w64" in page.inner_text("#outcome-closest li")
    assert page.inner_text("#job-status") == "succeeded: no feasible subnet"
    page.hover("#pareto-plot .point >> nth=0")
    tip = page.inner_text("#pareto-plot .tooltip")
    assert "accuracy (val)" in tip and "accuracy (test, held out)" in tip and "0.8765" in tip
