"""``make run``: the quick start on the embedded SQLite store with local Ray, end to end, in a
fresh data directory. It must finish the example job in under 10 minutes on two cores."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.timeout(660)
def test_quickstart_runs_the_digits_example_to_a_front(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAS_")}
    env.update(
        NAS_DATA_DIR=str(tmp_path / "var"),
        NAS_API_PORT=str(_free_port()),
        NAS_QUICKSTART_EXIT="1",
        PYTHONUNBUFFERED="1",
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "nas_service.quickstart"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=630,
    )
    elapsed = time.monotonic() - started
    out = done.stdout
    assert done.returncode == 0, f"{out[-3000:]}\n{done.stderr[-3000:]}"
    assert elapsed < 600, f"the quick start took {elapsed:.0f}s"
    tail = out[-3000:]
    assert re.search(r"Dashboard: http://127\.0\.0\.1:\d+/", out), tail
    assert re.search(r"API key:\s+nas_\S+", out), tail
    assert "succeeded" in out, tail
    front = out.split("Pareto front:", 1)[1].strip().splitlines()
    assert front[0].split()[:4] == ["id", "accuracy(val)", "accuracy(test)", "flops"], tail
    assert len(front) >= 3, f"at least one architecture on the front\n{tail}"
    # The embedded store was created where NAS_DATA_DIR says, and the service is gone.
    assert (tmp_path / "var" / "nas.sqlite").is_file()
    port = int(env["NAS_API_PORT"])
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
