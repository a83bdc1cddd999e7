"""End-to-end fixtures: the real app served by uvicorn on a free port, a private PostgreSQL
database (tests/pg.py helpers), the real dispatcher as a child process, headless Chromium.

The e2e database is separate from the one the ``db`` fixture truncates after each test, so a
job the dispatcher is running is never wiped from under it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from nas_service.cli_serve import start_dispatcher, stop_process
from nas_service.db import Database
from nas_service.settings import Settings
from tests.pg import new_key, private_database

ROOT = Path(__file__).resolve().parents[2]
# The committed screenshots in docs/ are refreshed on request (NAS_UPDATE_SCREENSHOTS=1), so a
# plain test run leaves the checkout as it found it.
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("NAS_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "nas-screenshots"
)
CHROMIUM = Path(os.environ.get("NAS_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_app(settings: Settings) -> Iterator[str]:
    """The app for ``settings`` served by uvicorn from a thread; yields the base URL."""
    import uvicorn

    from nas_service.cli_serve import build_app

    port = free_port()
    config = uvicorn.Config(build_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/api/v1/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the e2e server did not start")
        time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="session")
def e2e_db() -> Iterator[Database]:
    with private_database("e2e") as db:
        yield db


@pytest.fixture(scope="session")
def e2e_settings(e2e_db: Database, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir = tmp_path_factory.mktemp("nas-data")
    return Settings(database_url=e2e_db.url, data_dir=data_dir, heartbeat_interval_s=1.0)


@pytest.fixture(scope="session")
def live_server(e2e_settings: Settings) -> Iterator[str]:
    """The service's base URL (no trailing slash), served from a thread of this process."""
    with serve_app(e2e_settings) as url:
        yield url


@pytest.fixture(scope="session")
def api_key(e2e_db: Database) -> str:
    return new_key(e2e_db, f"e2e-{uuid.uuid4().hex[:8]}")[1]


@pytest.fixture(scope="module")  # stopped after each module: one local Ray at a time
def dispatcher(e2e_settings: Settings, live_server: str) -> Iterator[subprocess.Popen[bytes]]:
    """The real dispatcher (``python -m workers.runtime.dispatcher``) against the e2e database."""
    proc = start_dispatcher(e2e_settings)
    time.sleep(1.0)
    if proc.poll() is not None:
        raise RuntimeError(f"the dispatcher exited at once with code {proc.returncode}")
    try:
        yield proc
    finally:
        stop_process(proc, grace_s=30.0)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"headless Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[[str], Any]]:
    """Opens pages on a given server; fails the test on any uncaught JavaScript error."""
    contexts: list[Any] = []
    errors: list[str] = []

    def open_page(base_url: str) -> Any:
        context = browser.new_context(
            accept_downloads=True, viewport={"width": 1280, "height": 900}, base_url=base_url
        )
        contexts.append(context)
        pg = context.new_page()
        pg.on("pageerror", lambda e: errors.append(str(e)))
        return pg

    try:
        yield open_page
    finally:
        for context in contexts:
            context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(new_page: Callable[[str], Any], live_server: str) -> Any:
    return new_page(live_server)


def sign_in(page: Any, key: str) -> None:
    page.goto("/")
    page.fill("#api-key", key)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#jobs-table")


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


__all__ = ["screenshot", "sign_in"]


# Jobs the dashboard tests share: run once per session by their own dispatcher (stopped before
# the tests use them), on the session's server and database, for a key of their own.
SHARED_SPECS = {
    "mlp": {
        "name": "mlp on digits",
        "space": {"id": "mlp", "options": {}},
        "dataset": {"name": "digits"},
        "training": {"preset": "tiny", "epochs_scale": 0.4},
        "search": {
            "algorithm": "evolution",
            "budget": 14,
            "objectives": [{"name": "accuracy"}, {"name": "flops"}],
        },
    },
    "mlp2": {
        "name": "mlp seed 1",
        "seed": 1,
        "space": {"id": "mlp", "options": {}},
        "dataset": {"name": "digits"},
        "training": {"preset": "tiny", "epochs_scale": 0.4},
        "search": {
            "algorithm": "random",
            "budget": 10,
            "objectives": [{"name": "accuracy"}, {"name": "flops"}],
        },
    },
    "mbv3": {
        "name": "mbv3 on digits",
        "space": {
            "id": "mbv3",
            "options": {"width_mult": 0.5, "kernels": [3, 5], "expands": [3, 6], "depths": [1, 2]},
        },
        "dataset": {"name": "digits"},
        "training": {"preset": "tiny", "epochs_scale": 0.4},
        "search": {
            "algorithm": "evolution",
            "budget": 8,
            "objectives": [{"name": "accuracy"}, {"name": "flops"}],
        },
    },
}


@pytest.fixture(scope="session")
def finished_jobs(e2e_settings: Settings, live_server: str, e2e_db: Database) -> dict[str, str]:
    """Three finished jobs (``mlp``, ``mlp2``, ``mbv3``) of one key (``key``): ids by name."""
    key = new_key(e2e_db, f"e2e-shared-{uuid.uuid4().hex[:6]}")[1]
    headers = {"Authorization": f"Bearer {key}"}
    ids = {}
    for name, spec in SHARED_SPECS.items():
        r = httpx.post(f"{live_server}/api/v1/jobs", json=spec, headers=headers, timeout=30)
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
    # Two jobs at once: one job's Ray Train start-up and exports overlap the other's compute.
    proc = start_dispatcher(e2e_settings, "--max-jobs", "2")
    try:
        deadline = time.monotonic() + 900
        while True:
            states = {
                n: httpx.get(f"{live_server}/api/v1/jobs/{j}", headers=headers, timeout=30).json()
                for n, j in ids.items()
            }
            if all(s["status"] in ("succeeded", "failed", "cancelled") for s in states.values()):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the shared jobs did not finish: {states}")
            time.sleep(2)
    finally:
        stop_process(proc, grace_s=30.0)
    bad = {n: s.get("error") for n, s in states.items() if s["status"] != "succeeded"}
    assert not bad, f"shared jobs failed: {bad}"
    return {"key": key, **ids}


# A small vision transformer among the shared jobs (``finished_jobs["vit"]``): two widths,
# one or two layers of one or two heads, so it runs about as fast as the mbv3 one. The patch,
# the stem and the head width are stated, so the dashboard can draw the token grid from the
# job's spec; the pooling is left to the fit (the view says it was set from the data).
SHARED_SPECS["vit"] = {
    "name": "vit on digits",
    "space": {
        "id": "vit",
        "options": {
            "embed_dims": [16, 32],
            "depths": [1, 2],
            "heads": [1, 2],
            "mlp_ratios": [2, 3],
            "head_dim": 8,
            "patch_size": 2,
            "stem_channels": 8,
            "stem_stride": 1,
        },
    },
    "dataset": {"name": "digits"},
    "training": {"preset": "tiny", "epochs_scale": 0.4},
    "search": {
        "algorithm": "evolution",
        "budget": 8,
        "objectives": [{"name": "accuracy"}, {"name": "flops"}],
    },
}
