"""The ``nas`` console script against a real server: ``nas serve --no-dispatcher`` started as a
child process on a private PostgreSQL database (tests/pg.py) and a temporary data directory.
Every command runs as its own process, exactly as a user types it (``Nas.run``).

No dispatcher runs: jobs stay queued, and what a runner would write (candidates, a front) is
written with the repositories, in the same database the server reads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from nas_service.db import Database
from tests.pg import new_key, private_database

ROOT = Path(__file__).resolve().parents[2]
NAS = Path(sys.executable).parent / "nas"  # the console script pip installed
EXAMPLES = ROOT / "examples"
TINY_JOB = """\
name: {name}
space: {{id: mlp, options: {{}}}}
dataset: {{name: digits}}
training: {{preset: tiny, epochs_scale: 0.4}}
search: {{algorithm: random, budget: 10, objectives: [{{name: accuracy}}, {{name: params}}]}}
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any NAS_* or XDG_DATA_HOME, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAS_")}
    env.pop("XDG_DATA_HOME", None)
    env.update(extra)
    return env


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(env: Mapping[str, str], cwd: Path, log: Path, timeout: float = 60) -> Served:
    """``nas serve --no-dispatcher`` on a free port; returns once ``/readyz`` answers 200."""
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(NAS), "serve", "--no-dispatcher", "--no-access-log", "--port", str(port)],
            env=dict(env),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{served.url}/api/v1/readyz", timeout=2).status_code == 200:
                return served
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            served.stop()
            raise RuntimeError(f"nas serve did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


@dataclass
class Nas:
    """Runs the console script with a user's environment: the server's URL and key, and the
    server's store for the commands that write it (keys, devices add|remove)."""

    url: str
    db: Database
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self,
        *argv: str,
        env: Mapping[str, str | None] | None = None,
        cwd: Path | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        full = dict(self.env)
        for k, v in (env or {}).items():
            if v is None:
                full.pop(k, None)
            else:
                full[k] = v
        return subprocess.run(
            [str(NAS), *argv],
            env=full,
            cwd=cwd or self.data_dir.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, *argv: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        done = self.run(*argv, **kw)
        assert done.returncode == 0, f"nas {' '.join(argv)} -> {done.returncode}\n{done.stderr}"
        return done

    def json(self, *argv: str, **kw: Any) -> Any:
        import json

        return json.loads(self.ok(*argv, "--json", **kw).stdout)

    def with_key(self, key: str) -> Nas:
        return Nas(self.url, self.db, self.data_dir, {**self.env, "NAS_API_KEY": key})

    def submit(self, tmp_path: Path, name: str = "cli test") -> str:
        job = tmp_path / f"job-{uuid.uuid4().hex[:6]}.yaml"
        job.write_text(TINY_JOB.format(name=name))
        return self.ok("submit", str(job)).stdout.strip()


@pytest.fixture(scope="session")
def cli_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Database, Path]]:
    with private_database("cli") as db:
        data_dir = tmp_path_factory.mktemp("cli") / "data"
        env = clean_env(
            NAS_DATABASE_URL=db.url,
            NAS_DATA_DIR=str(data_dir),
            NAS_AUTH_CACHE_S="0",
            NAS_POLL_CACHE_S="0",
            NAS_MAX_JOBS_PER_KEY_RUNNING="100",
        )
        served = start_server(env, data_dir.parent, data_dir.parent / "server.log")
        try:
            yield served, db, data_dir
        finally:
            served.stop()


@pytest.fixture
def nas(cli_server: tuple[Served, Database, Path]) -> Nas:
    """A user with a fresh key of their own (so each test sees only its own jobs)."""
    served, db, data_dir = cli_server
    key = new_key(db, f"cli-{uuid.uuid4().hex[:8]}")[1]
    env = clean_env(
        NAS_URL=served.url,
        NAS_API_KEY=key,
        NAS_DATABASE_URL=db.url,
        NAS_DATA_DIR=str(data_dir),
        COLUMNS="200",
    )
    return Nas(served.url, db, data_dir, env)
