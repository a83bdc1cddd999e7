"""The whole dashboard flow with the real runner: submit a small job from the form, watch it
reach ``succeeded`` without reloading, see the Pareto points drawn, download a subnet.
The finished job page is saved to docs/screenshots/job.png."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import screenshot, sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
]

JOB_TIMEOUT_MS = 540_000


def test_submit_watch_and_download_from_the_dashboard(
    page: Any,
    live_server: str,
    api_key: str,
    dispatcher: subprocess.Popen[bytes],
    tmp_path: Path,
) -> None:
    sign_in(page, api_key)
    page.click("a[href='#/new']")
    page.fill("[data-field='name']", "browser flow")
    page.fill("[data-field='training.epochs_scale']", "0.4")
    page.fill("[data-field='search.budget']", "12")
    page.click("#submit-job")
    page.wait_for_url("**/#/jobs/*")
    job_id = page.url.rsplit("/", 1)[-1]
    page.wait_for_selector("#job-status [data-status]")

    # The page updates itself: no reload from here on.
    page.evaluate("window.__sameDocument = true")
    page.wait_for_selector("#job-status [data-status='succeeded']", timeout=JOB_TIMEOUT_MS)
    assert page.evaluate("window.__sameDocument") is True
    page.wait_for_selector("#poll-state[data-stopped='true']")

    # Points drawn: as many front markers as the API's front has members.
    headers = {"Authorization": f"Bearer {api_key}"}
    front = httpx.get(f"{live_server}/api/v1/jobs/{job_id}/pareto", headers=headers).json()
    members = next(v for k, v in front.items() if k in ("front", "points", "candidates", "items"))
    assert members, "a succeeded job has a non-empty front"
    page.wait_for_selector("#pareto-plot svg .point.pareto")
    assert page.locator("#pareto-plot .point.pareto").count() == len(members)
    assert page.locator("#pareto-table tbody tr").count() == len(members)
    assert "points drawn" in page.inner_text("#pareto-note")
    page.hover("#pareto-plot .point.pareto >> nth=0")
    assert page.is_visible("#pareto-plot .tooltip")
    assert page.locator("#curves-plot svg path.series").count() >= 1
    assert page.locator("#flops-hist svg rect.bar").count() >= 1
    assert page.locator("#events li").count() >= 2
    assert page.is_disabled("#cancel-job")
    screenshot(page, "job.png")

    # Download the first front member's weights (the page waits through any 202).
    first = members[0]["id"]
    with page.expect_download(timeout=180_000) as dl:
        page.click(f"#pareto-table button[data-candidate='{first}'][data-format='weights']")
    saved = tmp_path / "subnet.pt"
    dl.value.save_as(saved)
    body = saved.read_bytes()
    assert len(body) > 0
    again = httpx.get(
        f"{live_server}/api/v1/candidates/{first}/subnet",
        params={"format": "weights"},
        headers=headers,
    )
    assert again.status_code == 200
    assert again.content == body
    etag = again.headers.get("ETag", "").strip('"')
    if len(etag) == 64:
        assert hashlib.sha256(body).hexdigest() == etag

    page.click("a[href='#/jobs']")
    page.wait_for_selector(f"#jobs-body tr[data-job-id='{job_id}'] [data-status='succeeded']")
