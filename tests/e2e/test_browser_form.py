"""Dashboard in headless Chromium against the real API on PostgreSQL: sign-in and the submit
form's validation messages (no runner needed: nothing valid is submitted)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from nas_service.db import Database
from tests.e2e.conftest import screenshot, sign_in
from tests.pg import new_key

pytestmark = pytest.mark.browser


def test_an_unknown_key_is_refused_at_sign_in(page: Any) -> None:
    page.goto("/")
    page.fill("#api-key", "nas_not-a-real-key")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:not(:empty)")
    assert "not accepted" in page.inner_text("#login-error")
    assert page.evaluate("sessionStorage.getItem('nas.apiKey')") is None


def test_a_bad_form_shows_the_api_messages_next_to_the_fields(
    page: Any, live_server: str, e2e_db: Database
) -> None:
    key = new_key(e2e_db, "e2e-form")[1]
    sign_in(page, key)
    page.click("a[href='#/new']")
    page.wait_for_selector("#job-form")
    # The registered devices are listed under the devices field.
    page.wait_for_function(
        "document.querySelector('#device-hint').textContent === 'registered: cpu, cpu-stable'"
    )
    page.fill("[data-field='search.budget']", "0")
    page.fill("[data-field='search.objectives[1].bound']", "-5")
    with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith("/api/v1/jobs")
    ) as sent:
        page.click("#submit-job")
    page.wait_for_selector("[data-error-for='search.budget']:not(:empty)")

    # The same body straight to the API: the page shows the API's own reasons, field by field.
    spec = sent.value.post_data_json
    problem = httpx.post(
        f"{live_server}/api/v1/jobs",
        json=spec,
        headers={"Authorization": f"Bearer {key}"},
    )
    assert problem.status_code == 422
    reasons = {e["field"]: e["reason"] for e in problem.json()["errors"]}
    assert set(reasons) >= {"search.budget", "search.objectives[1].bound"}
    for field, reason in reasons.items():
        shown = page.inner_text(f"[data-error-for='{field}']")
        assert reason in shown
        assert "invalid" in page.get_attribute(f"[data-field='{field}']", "class")
    screenshot(page, "form.png")

    # Fixed fields lose their messages; a misspelt dataset option is named under the options box.
    page.fill("[data-field='search.budget']", "40")
    page.fill("[data-field='search.objectives[1].bound']", "")
    page.fill("[data-field='dataset.options']", '{"val_fracton": 0.3}')
    page.click("#submit-job")
    page.wait_for_selector("[data-error-for='dataset.options']:not(:empty)")
    assert "unknown option for digits datasets" in page.inner_text(
        "[data-error-for='dataset.options']"
    )
    assert page.inner_text("[data-error-for='search.budget']") == ""
    assert "invalid" not in (page.get_attribute("[data-field='search.budget']", "class") or "")

    # Nothing was created for that key.
    jobs = httpx.get(f"{live_server}/api/v1/jobs", headers={"Authorization": f"Bearer {key}"})
    assert jobs.status_code == 200
    body = jobs.json()
    assert (body["items"] if isinstance(body, dict) else body) == []
