"""The dashboard's views in headless Chromium against the real service, with jobs that the real
dispatcher ran (``finished_jobs``, shared by the session): exact numbers, the table of every
candidate (sort, filter, pages), a candidate's details with its architecture and downloads,
comparing fronts, dataset upload, progress across phases, empty and not-found states, the key
across tabs, cancel confirmation, the vit architecture view, deleting jobs and datasets (and
what the server refuses) and a narrow screen."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from nas_service.db import Database
from tests.e2e.conftest import screenshot, sign_in
from tests.pg import new_key

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def api(url: str, key: str, path: str) -> Any:
    r = httpx.get(f"{url}/api/v1{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    r.raise_for_status()
    return r.json()


def all_candidates(url: str, key: str, job_id: str) -> list[dict[str, Any]]:
    return api(url, key, f"/jobs/{job_id}/candidates?limit=500")["items"]


def open_job(page: Any, key: str, job_id: str) -> None:
    blank = page.url in ("about:blank", "")
    if blank or page.evaluate("localStorage.getItem('nas.apiKey')") != key:
        sign_in(page, key)
    page.goto(f"/#/jobs/{job_id}")
    page.wait_for_selector("#poll-state[data-stopped='true']")
    page.wait_for_selector("#cand-body tr")


def column(page: Any, col: str) -> list[str]:
    return page.locator(f"#cand-body td[data-col='{col}']").all_inner_texts()


def test_numbers_are_exact_and_the_candidate_table_sorts_filters_and_pages(
    page: Any, live_server: str, finished_jobs: dict[str, str]
) -> None:
    key, job_id = finished_jobs["key"], finished_jobs["mlp"]
    cands = all_candidates(live_server, key, job_id)
    assert len(cands) > 10
    open_job(page, key, job_id)

    # Every candidate is in the table (not only the front), 25 to a page.
    assert page.locator("#cand-body tr").count() == min(25, len(cands))
    info = page.inner_text("#cand-info")
    assert f"of {len(cands)}" in info

    # Exact figures with separators: 109,056 MACs, not 109100.
    big = max(cands, key=lambda c: c["flops"])
    assert big["flops"] >= 1000
    cell = page.inner_text(f"#cand-body tr[data-candidate-id='{big['id']}'] td[data-col='flops']")
    assert cell == f"{big['flops']:,}"
    assert re.fullmatch(r"\d{1,3}(,\d{3})+", cell)

    # Sort by FLOPs (a minimised objective: smallest first), then the other way.
    page.click("button[data-sort='flops']")
    assert page.get_attribute("th:has(button[data-sort='flops'])", "aria-sort") == "ascending"
    shown = [int(t.replace(",", "")) for t in column(page, "flops")]
    assert shown == sorted(c["flops"] for c in cands)[: len(shown)]
    page.click("button[data-sort='flops']")
    assert page.get_attribute("th:has(button[data-sort='flops'])", "aria-sort") == "descending"
    shown = [int(t.replace(",", "")) for t in column(page, "flops")]
    assert shown == sorted((c["flops"] for c in cands), reverse=True)[: len(shown)]
    # Accuracy is maximised: best (highest) first on the first click.
    page.click("button[data-sort='accuracy']")
    assert page.get_attribute("th:has(button[data-sort='accuracy'])", "aria-sort") == "descending"

    def acc(c: dict[str, Any]) -> float:
        measured = c["source"] != "predicted" and c["accuracy"] is not None
        return float(c["accuracy"] if measured else c["predicted_accuracy"])

    top = page.inner_text("#cand-body tr >> nth=0 >> td[data-col='id']")
    assert int(top) == max(cands, key=lambda c: (acc(c), -c["id"]))["id"]

    # Filter: the front only, then an arch substring.
    page.check("#cand-front")
    front = [c for c in cands if c["is_pareto"]]
    assert page.locator("#cand-body tr").count() == len(front)
    assert {int(t) for t in column(page, "id")} == {c["id"] for c in front}
    page.uncheck("#cand-front")
    needle = cands[0]["arch_short"]
    page.fill("#cand-search", needle)
    matches = [c for c in cands if needle.lower() in c["arch_short"].lower()]
    assert page.locator("#cand-body tr").count() == min(25, len(matches))
    page.fill("#cand-search", "no-such-arch")
    assert page.is_visible("#cand-empty")
    assert "No candidate matches" in page.inner_text("#cand-empty")
    page.fill("#cand-search", "")

    # Pages of 10.
    page.select_option("#cand-page-size", "10")
    assert page.locator("#cand-body tr").count() == 10
    assert page.is_disabled("#cand-prev")
    page.click("#cand-next")
    assert page.locator("#cand-body tr").count() == min(10, len(cands) - 10)
    assert f"11–{min(20, len(cands))} of {len(cands)}" in page.inner_text("#cand-info")

    # The tooltip and the front table use the same exact numbers.
    point = front[0]
    page.hover(f"#pareto-plot .point[data-id='{point['id']}']")
    assert f"{point['flops']:,}" in page.inner_text("#pareto-plot .tooltip")
    screenshot(page, "candidates.png")


def test_a_point_or_a_row_opens_the_details_with_architecture_and_downloads(
    page: Any, live_server: str, finished_jobs: dict[str, str], tmp_path: Path
) -> None:
    key, job_id = finished_jobs["key"], finished_jobs["mbv3"]
    front = api(live_server, key, f"/jobs/{job_id}/pareto")["front"]
    assert front
    open_job(page, key, job_id)

    # Click a point on the plot.
    c = front[0]
    page.click(f"#pareto-plot .point[data-id='{c['id']}']")
    page.wait_for_selector(f"#candidate-details[data-candidate-id='{c['id']}']")
    assert "selected" in page.get_attribute(f"#pareto-plot .point[data-id='{c['id']}']", "class")
    assert page.inner_text("#details-figures dd[data-key='flops']") == f"{c['flops']:,} MACs"

    # The architecture drawn is the arch: resolution, 5 stages, per-stage depth, per-block
    # kernel and expand, blocks past the depth unused.
    arch = c["arch"]
    view = page.locator("#arch-view")
    assert view.get_attribute("data-space") == "mbv3"
    assert f"resolution {arch['resolution']}" in page.inner_text("#arch-view .arch-head")
    stages = sorted({int(k.split(".")[0][1:]) for k in arch if k.startswith("s")})
    assert page.locator("#arch-view .arch-stage").count() == len(stages)
    total_active = 0
    for i in stages:
        stage = page.locator(f"#arch-view .arch-stage[data-index='{i}']")
        depth = arch[f"s{i}.depth"]
        assert stage.get_attribute("data-depth") == str(depth)
        blocks = sorted({int(k.split(".")[1][1:]) for k in arch if k.startswith(f"s{i}.b")})
        assert stage.locator(".arch-block").count() == len(blocks)
        for j in blocks:
            block = stage.locator(f".arch-block[data-index='{j}']")
            assert block.get_attribute("data-kernel") == str(arch[f"s{i}.b{j}.kernel"])
            assert block.get_attribute("data-expand") == str(arch[f"s{i}.b{j}.expand"])
            assert block.get_attribute("data-active") == str(j <= depth).lower()
            # The kernel is drawn as a k x k grid.
            assert block.locator(".kernel-glyph > span").count() == arch[f"s{i}.b{j}.kernel"] ** 2
        total_active += min(depth, len(blocks))
    assert page.locator("#arch-view .arch-block.active").count() == total_active
    assert view.get_attribute("data-units-active") == str(total_active)
    screenshot(page, "candidate-details.png")

    # Its downloads: the weights of the exported front member.
    with page.expect_download(timeout=180_000) as dl:
        page.click("#candidate-details button[data-format='weights']")
    saved = tmp_path / "w.pt"
    dl.value.save_as(saved)
    assert saved.stat().st_size > 0

    # A row of the table opens another candidate; Close hides the details.
    other = next(x for x in all_candidates(live_server, key, job_id) if x["id"] != c["id"])
    page.select_option("#cand-page-size", "100")
    page.click(f"#cand-body tr[data-candidate-id='{other['id']}']")
    page.wait_for_selector(f"#candidate-details[data-candidate-id='{other['id']}']")
    row = f"#cand-body tr[data-candidate-id='{other['id']}']"
    assert "selected" in page.get_attribute(row, "class")
    page.click("#details-close")
    assert page.locator("#candidate-details").count() == 0


def test_the_mlp_architecture_shows_its_layers_and_widths(
    page: Any, live_server: str, finished_jobs: dict[str, str]
) -> None:
    key, job_id = finished_jobs["key"], finished_jobs["mlp"]
    cands = all_candidates(live_server, key, job_id)
    c = max(cands, key=lambda x: x["arch"]["depth"])
    open_job(page, key, job_id)
    page.select_option("#cand-page-size", "100")
    page.click(f"#cand-body tr[data-candidate-id='{c['id']}']")
    page.wait_for_selector(f"#candidate-details[data-candidate-id='{c['id']}']")
    arch = c["arch"]
    layers = sorted(int(k.split(".")[0][1:]) for k in arch if re.fullmatch(r"l\d+\.width", k))
    assert page.locator("#arch-view .arch-layer").count() == len(layers)
    for j in layers:
        layer = page.locator(f"#arch-view .arch-layer[data-index='{j}']")
        assert layer.get_attribute("data-width") == str(arch[f"l{j}.width"])
        assert layer.get_attribute("data-active") == str(j <= arch["depth"]).lower()
    assert page.locator("#arch-view .arch-layer.active").count() == arch["depth"]
    assert f"depth {arch['depth']}" in page.inner_text("#arch-view .arch-head")


def test_a_finished_job_shows_training_across_phases_and_readable_charts(
    page: Any, live_server: str, finished_jobs: dict[str, str]
) -> None:
    key, job_id = finished_jobs["key"], finished_jobs["mbv3"]
    rows = api(live_server, key, f"/jobs/{job_id}/metrics")["items"]
    phases = list(dict.fromkeys(r["phase"] for r in rows))
    assert len(phases) >= 2
    open_job(page, key, job_id)

    # Whole job and training both complete; each phase listed with its epochs.
    assert page.get_attribute("#job-overall [role=progressbar]", "aria-valuenow") == "100"
    assert page.get_attribute("#job-training [role=progressbar]", "aria-valuenow") == "100"
    assert page.locator("#job-phases li").all_inner_texts() == [
        f"{p}: {max(r['epoch'] for r in rows if r['phase'] == p)} of "
        f"{next(r['metrics']['epochs'] for r in rows if r['phase'] == p)} epoch"
        + ("" if next(r["metrics"]["epochs"] for r in rows if r["phase"] == p) == 1 else "s")
        for p in phases
    ]
    assert f"{len(phases)} phases" in page.inner_text("#job-training-text")
    # A finished job has no current stage ("succeeded exporting" no more).
    assert page.inner_text("#job-status") == "succeeded"
    assert page.is_hidden("#job-stage-row")

    # The curves menu offers curves, not bookkeeping.
    curves = page.locator("#metric-key option").all_inner_texts()
    assert curves and "losses" in curves
    assert not {"worker_pid", "seconds", "phase_index", "global_step", "epochs"} & set(curves)

    # Histogram ticks are distinct; the hypervolume y title does not overlap its ticks.
    def texts(selector: str) -> list[str]:
        return page.eval_on_selector_all(selector, "els => els.map((e) => e.textContent)")

    ticks = texts("#flops-hist .x-tick")
    assert len(ticks) == len(set(ticks))
    if page.locator("#hv-plot svg").count():
        title = page.locator("#hv-plot .y-title").bounding_box()
        for box in [t.bounding_box() for t in page.locator("#hv-plot .y-tick").all()]:
            assert title["x"] + title["width"] <= box["x"], "the y title overlaps a tick label"
        labels = texts("#hv-plot .y-tick")
        assert all(labels)
        assert len(labels) == len(set(labels))

    # The job list shows the whole job's progress.
    page.click("a[href='#/jobs']")
    row = f"#jobs-body tr[data-job-id='{job_id}']"
    page.wait_for_selector(row)
    assert page.get_attribute(f"{row} [role=progressbar]", "aria-valuenow") == "100"
    assert page.inner_text(f"{row} td.stage") == "done"


def test_fronts_of_several_jobs_are_overlaid_and_compared(
    page: Any, live_server: str, finished_jobs: dict[str, str]
) -> None:
    key = finished_jobs["key"]
    names = ["mlp", "mlp2", "mbv3"]
    fronts = {n: api(live_server, key, f"/jobs/{finished_jobs[n]}/pareto")["front"] for n in names}
    sign_in(page, key)
    for n in names:
        page.check(f"#jobs-body input.compare-pick[data-job-id='{finished_jobs[n]}']")
    assert page.inner_text("#compare-jobs") == "Compare fronts (3)"
    page.click("#compare-jobs")
    page.wait_for_selector("#compare-plot svg")
    for n in names:
        series = page.locator(f"#compare-plot .front-series[data-series='{finished_jobs[n]}']")
        assert series.locator(".overlay-point").count() == len(fronts[n])
        row = page.locator(f"#compare-body tr[data-job-id='{finished_jobs[n]}']")
        assert row.locator("td[data-col='front']").inner_text() == str(len(fronts[n]))
        best = min(c["flops"] for c in fronts[n])
        assert row.locator("td[data-col='flops']").inner_text() == f"{best:,}"
    # Other axes: parameters against accuracy.
    page.select_option("#compare-x", "params")
    page.wait_for_selector("#compare-plot svg")
    assert "parameters" in page.text_content("#compare-plot .x-title")
    screenshot(page, "compare.png")


def test_a_dataset_is_uploaded_from_the_form_and_used_by_the_job(
    page: Any, live_server: str, e2e_db: Database, tmp_path: Path
) -> None:
    key = new_key(e2e_db, f"e2e-upload-{uuid.uuid4().hex[:6]}")[1]
    rng = np.random.default_rng(0)
    path = tmp_path / "blobs.npz"
    np.savez(path, x=rng.normal(size=(90, 12)).astype("float32"), y=np.arange(90) % 3)
    sign_in(page, key)
    page.click("a[href='#/new']")
    page.wait_for_selector("#job-form")
    page.set_input_files("#dataset-file", str(path))
    page.fill("#dataset-name", "blobs")
    page.click("#upload-dataset")
    page.wait_for_selector("#upload-status[data-dataset-id]")
    ds_id = page.get_attribute("#upload-status", "data-dataset-id")
    listed = api(live_server, key, "/datasets")["items"]
    assert [d["id"] for d in listed] == [ds_id] and listed[0]["name"] == "blobs"
    assert page.input_value("[data-field='dataset.id']") == ds_id
    assert "blobs" in page.inner_text("#upload-status")
    screenshot(page, "form-upload.png")

    def submitted(r: Any) -> bool:
        return bool(r.method == "POST" and r.url.endswith("/api/v1/jobs"))

    with page.expect_request(submitted) as sent:
        page.click("#submit-job")
    assert sent.value.post_data_json["dataset"]["id"] == ds_id
    page.wait_for_url("**/#/jobs/*")
    job_id = page.url.rsplit("/", 1)[-1]
    assert api(live_server, key, f"/jobs/{job_id}")["spec"]["dataset"]["id"] == ds_id
    httpx.post(
        f"{live_server}/api/v1/jobs/{job_id}/cancel", headers={"Authorization": f"Bearer {key}"}
    )

    # A file the service refuses says why, under the upload.
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    page.goto("/#/new")
    page.wait_for_selector("#job-form")
    page.set_input_files("#dataset-file", str(bad))
    page.click("#upload-dataset")
    page.wait_for_selector("[data-error-for='upload']:not(:empty)")


def test_empty_and_not_found_states_and_polling_stops(
    page: Any, live_server: str, e2e_db: Database
) -> None:
    key = new_key(e2e_db, f"e2e-empty-{uuid.uuid4().hex[:6]}")[1]
    sign_in(page, key)
    page.wait_for_selector("#jobs-empty:not([hidden])")
    assert "No jobs yet." in page.inner_text("#jobs-empty")

    # An unknown job: a not-found page, and no more requests for it.
    missing = str(uuid.uuid4())
    asked: list[str] = []
    page.on("request", lambda r: missing in r.url and asked.append(r.url))
    page.goto(f"/#/jobs/{missing}")
    page.wait_for_selector("#job-not-found")
    assert "Job not found" in page.inner_text("#job-not-found")
    n = len(asked)
    page.wait_for_timeout(4000)
    assert len(asked) == n, "the page kept polling a job that does not exist"

    page.goto("/#/nowhere")
    page.wait_for_selector("#page-not-found")

    # A job without candidates yet: the table and the front say so.
    headers = {"Authorization": f"Bearer {key}"}
    spec = {"space": {"id": "mlp"}, "dataset": {"name": "digits"}, "search": {"budget": 10}}
    job_id = httpx.post(f"{live_server}/api/v1/jobs", json=spec, headers=headers).json()["id"]
    httpx.post(f"{live_server}/api/v1/jobs/{job_id}/cancel", headers=headers)
    page.goto(f"/#/jobs/{job_id}")
    page.wait_for_selector("#poll-state[data-stopped='true']")
    page.wait_for_selector("#cand-empty:not([hidden])")
    assert page.inner_text("#cand-empty") == "No candidates yet."
    assert page.inner_text("#front-empty") == "No front yet."
    assert "No candidates yet." in page.inner_text("#pareto-plot")


def test_the_key_is_kept_across_tabs_and_sign_out_clears_it(
    new_page: Callable[[str], Any], live_server: str, e2e_db: Database
) -> None:
    key = new_key(e2e_db, f"e2e-tabs-{uuid.uuid4().hex[:6]}")[1]
    first = new_page(live_server)
    sign_in(first, key)
    second = first.context.new_page()
    second.goto("/")
    second.wait_for_selector("#jobs-table, #jobs-empty")
    assert second.locator("#login-form").count() == 0
    assert second.evaluate("localStorage.getItem('nas.apiKey')") == key

    second.click("#sign-out")
    second.wait_for_selector("#login-form")
    first.wait_for_selector("#login-form")  # the other tab follows
    assert first.evaluate("localStorage.getItem('nas.apiKey')") is None
    assert first.evaluate("sessionStorage.getItem('nas.apiKey')") is None
    first.reload()
    first.wait_for_selector("#login-form")


def test_cancel_asks_for_confirmation(page: Any, live_server: str, e2e_db: Database) -> None:
    key = new_key(e2e_db, f"e2e-cancel-{uuid.uuid4().hex[:6]}")[1]
    headers = {"Authorization": f"Bearer {key}"}
    spec = {"name": "to cancel", "space": {"id": "mlp"}, "dataset": {"name": "digits"}}
    job_id = httpx.post(f"{live_server}/api/v1/jobs", json=spec, headers=headers).json()["id"]
    sign_in(page, key)
    page.goto(f"/#/jobs/{job_id}")
    page.wait_for_selector("#job-status [data-status='queued']")

    page.click("#cancel-job")
    page.wait_for_selector("#confirm-dialog[open]")
    assert "Cancel this job?" in page.inner_text("#confirm-dialog")
    page.click("#confirm-no")
    assert page.locator("#confirm-dialog").count() == 0
    page.wait_for_timeout(500)
    job = api(live_server, key, f"/jobs/{job_id}")
    assert job["status"] == "queued" and not job["cancel_requested"]

    page.click("#cancel-job")
    page.click("#confirm-yes")
    page.wait_for_selector("#job-status [data-status='cancelled']")
    assert api(live_server, key, f"/jobs/{job_id}")["status"] == "cancelled"


def no_overflow(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    inner = page.evaluate("window.innerWidth")
    assert width <= inner, f"horizontal overflow: {width} > {inner}"
    # No card reaches past the screen (wide tables scroll inside their own box).
    right = page.evaluate(
        "Math.max(...[...document.querySelectorAll('.card, header.top')]"
        ".map((e) => e.getBoundingClientRect().right))"
    )
    assert right <= inner + 0.5, f"a card ends at {right}px on a {inner}px screen"


def test_a_narrow_screen_has_no_horizontal_overflow(
    browser: Any, live_server: str, finished_jobs: dict[str, str]
) -> None:
    key = finished_jobs["key"]
    context = browser.new_context(viewport={"width": 375, "height": 800}, base_url=live_server)
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        sign_in(page, key)
        page.wait_for_selector("#jobs-body tr")
        no_overflow(page)
        open_job(page, key, finished_jobs["mbv3"])
        page.click("#pareto-plot .point.pareto >> nth=0")
        page.wait_for_selector("#candidate-details")
        no_overflow(page)
        screenshot(page, "narrow-job.png")
        page.goto("/#/new")
        page.wait_for_selector("#job-form")
        no_overflow(page)
        ids = ",".join(finished_jobs[n] for n in ("mlp", "mlp2"))
        page.goto(f"/#/compare?jobs={ids}")
        page.wait_for_selector("#compare-plot svg")
        no_overflow(page)
    finally:
        context.close()
    assert not errors, errors


def open_candidate(page: Any, key: str, job_id: str, candidate_id: int) -> None:
    open_job(page, key, job_id)
    page.select_option("#cand-page-size", "100")
    page.click(f"#cand-body tr[data-candidate-id='{candidate_id}']")
    page.wait_for_selector(f"#candidate-details[data-candidate-id='{candidate_id}']")


def test_the_vit_architecture_shows_its_token_grid_embedding_and_layers(
    page: Any, live_server: str, finished_jobs: dict[str, str]
) -> None:
    key, job_id = finished_jobs["key"], finished_jobs["vit"]
    options = api(live_server, key, f"/jobs/{job_id}")["spec"]["space"]["options"]
    cands = all_candidates(live_server, key, job_id)
    assert cands
    # One with unused layers when the search found one (depth below the deepest).
    c = min(cands, key=lambda x: (x["arch"]["depth"], x["id"]))
    arch = c["arch"]
    open_candidate(page, key, job_id, c["id"])

    view = page.locator("#arch-view")
    assert view.get_attribute("data-space") == "vit"
    assert view.get_attribute("data-layout") == "vit"
    head = page.inner_text("#arch-view .arch-head")
    assert f"resolution {arch['resolution']}" in head
    assert f"embed {arch['embed']}" in head
    assert f"depth {arch['depth']}" in head

    # Resolution 8, patch 2 behind a stride-1 stem: a 4 x 4 token grid, drawn cell by cell.
    grid = arch["resolution"] // options["patch_size"]
    tokens = page.locator("#vit-grid")
    assert tokens.get_attribute("data-grid") == str(grid)
    assert tokens.get_attribute("data-patch") == str(options["patch_size"])
    assert tokens.locator(".token-grid > span").count() == grid * grid
    assert f"{grid} × {grid} tokens" in tokens.inner_text()
    assert f"conv 3×3, {options['stem_channels']} ch" in page.inner_text("#vit-input")
    assert page.get_attribute("#vit-embed", "data-embed") == str(arch["embed"])

    # Every layer of the arch, with its heads and MLP ratio; those past the depth unused.
    layers = sorted(int(k.split(".")[0][1:]) for k in arch if re.fullmatch(r"l\d+\.heads", k))
    assert len(layers) == max(options["depths"])
    assert page.locator("#arch-view .arch-layer").count() == len(layers)
    for j in layers:
        layer = page.locator(f"#arch-view .arch-layer[data-index='{j}']")
        heads, ratio = arch[f"l{j}.heads"], arch[f"l{j}.mlp_ratio"]
        active = j <= arch["depth"]
        assert layer.get_attribute("data-heads") == str(heads)
        assert layer.get_attribute("data-mlp_ratio") == str(ratio)
        assert layer.get_attribute("data-active") == str(active).lower()
        assert layer.locator(".head-cells > span.on").count() == heads
        text = layer.inner_text()
        hd = options["head_dim"]
        assert f"{heads} head{'' if heads == 1 else 's'} × {hd} = {heads * hd}" in text
        assert f"MLP ×{ratio} → {ratio * arch['embed']:,} units" in text
        assert ("not used" in text) == (not active)
    assert page.locator("#arch-view .arch-layer.active").count() == arch["depth"]
    assert page.locator("#arch-view .arch-layer.inactive").count() == len(layers) - arch["depth"]
    assert view.get_attribute("data-units-active") == str(arch["depth"])
    # The pooling was left to the fit: the view says so rather than guessing it.
    assert "pool" in page.inner_text("#vit-fitted")
    screenshot(page, "candidate-vit.png")


def test_deleting_a_finished_job_asks_first_and_removes_it_from_the_list(
    page: Any, live_server: str, e2e_db: Database
) -> None:
    key = new_key(e2e_db, f"e2e-delete-{uuid.uuid4().hex[:6]}")[1]
    headers = {"Authorization": f"Bearer {key}"}
    spec = {"space": {"id": "mlp"}, "dataset": {"name": "digits"}, "search": {"budget": 10}}
    ids = []
    for name in ("to delete", "to keep"):
        r = httpx.post(f"{live_server}/api/v1/jobs", json={**spec, "name": name}, headers=headers)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
        httpx.post(f"{live_server}/api/v1/jobs/{ids[-1]}/cancel", headers=headers)
    gone, kept = ids
    sign_in(page, key)
    page.wait_for_selector(f"#jobs-body tr[data-job-id='{gone}']")
    page.goto(f"/#/jobs/{gone}")
    page.wait_for_selector("#job-status [data-status='cancelled']")

    # Keeping it keeps it.
    page.click("#delete-job")
    page.wait_for_selector("#confirm-dialog[open]")
    assert "Delete this job?" in page.inner_text("#confirm-dialog")
    page.click("#confirm-no")
    page.wait_for_timeout(300)
    assert api(live_server, key, f"/jobs/{gone}")["status"] == "cancelled"

    page.click("#delete-job")
    page.click("#confirm-yes")
    page.wait_for_selector("#jobs-table")
    page.wait_for_selector(f"#jobs-body tr[data-job-id='{kept}']")
    assert page.url.endswith("#/jobs")
    assert "Deleted “to delete”" in page.inner_text("#flash")
    assert page.locator(f"#jobs-body tr[data-job-id='{gone}']").count() == 0
    r = httpx.get(f"{live_server}/api/v1/jobs/{gone}", headers=headers)
    assert r.status_code == 404


def test_deleting_a_running_job_says_it_is_being_cancelled_and_tries_again(
    page: Any, live_server: str, e2e_db: Database
) -> None:
    key = new_key(e2e_db, f"e2e-delrun-{uuid.uuid4().hex[:6]}")[1]
    headers = {"Authorization": f"Bearer {key}"}
    spec = {"name": "busy", "space": {"id": "mlp"}, "dataset": {"name": "digits"}}
    job_id = httpx.post(f"{live_server}/api/v1/jobs", json=spec, headers=headers).json()["id"]
    httpx.post(f"{live_server}/api/v1/jobs/{job_id}/cancel", headers=headers)
    # No dispatcher runs here: the server's answer for a running job is played for the first
    # DELETE (409 job_running, Retry-After 1), the real one answers the next.
    answered: list[str] = []

    def running_once(route: Any) -> None:
        if route.request.method != "DELETE" or answered:
            route.continue_()
            return
        answered.append(route.request.url)
        problem = {
            "type": "urn:nas-service:problem:job_running",
            "title": "Job still running",
            "status": 409,
            "detail": f"job {job_id} is running: its cancel is requested",
            "code": "job_running",
            "instance": f"/api/v1/jobs/{job_id}",
        }
        route.fulfill(
            status=409,
            headers={"Retry-After": "1", "Content-Type": "application/problem+json"},
            body=json.dumps(problem),
        )

    sign_in(page, key)
    page.route(f"**/api/v1/jobs/{job_id}", running_once)
    page.goto(f"/#/jobs/{job_id}")
    page.wait_for_selector("#job-status [data-status='cancelled']")
    page.click("#delete-job")
    page.click("#confirm-yes")
    page.wait_for_selector("#delete-status[data-waiting='true']")
    assert "being cancelled" in page.inner_text("#delete-status")
    page.wait_for_selector("#flash:not([hidden])")
    assert len(answered) == 1
    assert httpx.get(f"{live_server}/api/v1/jobs/{job_id}", headers=headers).status_code == 404


def test_deleting_a_dataset_that_a_job_uses_shows_the_servers_reason(
    page: Any, live_server: str, e2e_db: Database, tmp_path: Path
) -> None:
    key = new_key(e2e_db, f"e2e-deldata-{uuid.uuid4().hex[:6]}")[1]
    headers = {"Authorization": f"Bearer {key}"}
    rng = np.random.default_rng(1)
    path = tmp_path / "blobs.npz"
    np.savez(path, x=rng.normal(size=(90, 12)).astype("float32"), y=np.arange(90) % 3)
    ds = {}
    for name in ("used", "spare"):
        with path.open("rb") as f:
            r = httpx.post(
                f"{live_server}/api/v1/datasets",
                files={"file": ("blobs.npz", f, "application/octet-stream")},
                data={"name": name},
                headers=headers,
            )
        assert r.status_code == 201, r.text
        ds[name] = r.json()["id"]
    spec = {"space": {"id": "mlp"}, "dataset": {"id": ds["used"]}, "search": {"budget": 10}}
    r = httpx.post(f"{live_server}/api/v1/jobs", json=spec, headers=headers)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    httpx.post(f"{live_server}/api/v1/jobs/{job_id}/cancel", headers=headers)

    sign_in(page, key)
    page.goto("/#/new")
    page.wait_for_selector(f"#datasets-list li[data-dataset-id='{ds['used']}']")
    used = page.locator(f"#datasets-list li[data-dataset-id='{ds['used']}']")
    used.locator("button.delete-dataset").click()
    page.wait_for_selector("#confirm-dialog[open]")
    assert "Delete this dataset?" in page.inner_text("#confirm-dialog")
    page.click("#confirm-yes")
    reason = used.locator(".dataset-error")
    reason.wait_for(state="visible")
    assert reason.get_attribute("data-code") == "in_use"
    # The server's own words, naming the job.
    refused = httpx.delete(f"{live_server}/api/v1/datasets/{ds['used']}", headers=headers)
    assert refused.status_code == 409
    assert refused.json()["detail"] in reason.inner_text()
    assert job_id in reason.inner_text()
    assert {d["id"] for d in api(live_server, key, "/datasets")["items"]} == set(ds.values())

    # One no job uses goes, from the list and from the picker.
    page.select_option("[data-field='dataset.id']", ds["spare"])
    page.click(f"#datasets-list li[data-dataset-id='{ds['spare']}'] button.delete-dataset")
    page.click("#confirm-yes")
    page.wait_for_selector(f"#datasets-list li[data-dataset-id='{ds['spare']}']", state="detached")
    assert page.locator(f"[data-field='dataset.id'] option[value='{ds['spare']}']").count() == 0
    assert page.input_value("[data-field='dataset.id']") == ""
    assert [d["id"] for d in api(live_server, key, "/datasets")["items"]] == [ds["used"]]
