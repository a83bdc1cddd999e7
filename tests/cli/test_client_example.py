"""``examples/client_example.py``, the Python client end to end: ``nas serve`` with its
dispatcher (local Ray, the embedded SQLite store in a fresh data directory), a tiny job
submitted, waited for, its front read and a subnet downloaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import NAS, ROOT, TINY_JOB, clean_env, free_port


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_client_example_submits_waits_reads_the_front_and_downloads(tmp_path: Path) -> None:
    env = clean_env(NAS_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    key = subprocess.run(
        [str(NAS), "keys", "create", "example"], env=env, capture_output=True, text=True
    )
    assert key.returncode == 0, key.stderr
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(NAS), "serve", "--no-access-log", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        job = tmp_path / "tiny.yaml"
        job.write_text(TINY_JOB.format(name="client example"))
        wait = subprocess.run(  # the client waits for readiness itself
            [sys.executable, "-c", f"from nas_service.client import NasClient; "
             f"NasClient('http://127.0.0.1:{port}').wait_ready(120)"],
            capture_output=True, text=True, timeout=150,
        )  # fmt: skip
        assert wait.returncode == 0, log.read_text()[-3000:]
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "client_example.py"), str(job),
             "-o", str(tmp_path), "--timeout", "480"],
            env={**env, "NAS_URL": f"http://127.0.0.1:{port}", "NAS_API_KEY": key.stdout.strip()},
            capture_output=True, text=True, timeout=540,
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{log.read_text()[-3000:]}"
    lines = done.stdout.splitlines()
    assert lines[0].startswith("submitted ") and lines[1].startswith("succeeded after ")
    saved = Path(lines[-1].split(" to ", 1)[1])
    assert lines[-1].startswith("downloaded candidate ")
    assert saved.parent == tmp_path and saved.suffix == ".pt" and saved.stat().st_size > 0
