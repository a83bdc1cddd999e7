"""The README's commands run as written: every ``nas`` and ``curl`` line of its shell blocks
(and the Python client's example script) is run, in the README's order, against ``nas serve``
with its dispatcher (local Ray, the embedded SQLite store in a fresh data directory, as a new
user has it), placeholders such as JOB and CANDIDATE filled with real ids and optional
``[...]`` parts left out, and must succeed."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.cli.conftest import NAS, ROOT, TINY_JOB, clean_env, free_port

README = ROOT / "README.md"


def readme_commands() -> list[str]:
    """The ``nas`` and ``curl`` commands of the README's bash blocks, in order (a line with
    several commands joined by `` | `` gives each)."""
    out: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.split(r"\s+#", line)[0].strip()
            if line.startswith(("nas ", ".venv/bin/nas ", "curl ")):
                out.extend(p.strip() for p in line.split(" | "))
    return out


def test_the_readme_shows_the_commands_this_test_runs() -> None:
    cmds = readme_commands()
    assert len(cmds) >= 25
    assert any(c.startswith("nas jobs candidates JOB") for c in cmds)
    assert any(c.startswith("curl ") and "/logs" in c for c in cmds)


def _run(line: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


def _status(url: str, key: str, job: str) -> str:
    r = httpx.get(f"{url}/api/v1/jobs/{job}", headers={"Authorization": f"Bearer {key}"})
    return str(r.json()["status"])


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_readme_command_runs_as_written(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for name in ("examples", ".venv"):
        (work / name).symlink_to(ROOT / name)
    rng = np.random.default_rng(0)
    np.savez(work / "mydata.npz", x=rng.normal(size=(30, 4)), y=np.arange(30) % 2)
    env = clean_env(NAS_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}"
    key = subprocess.run([str(NAS), "keys", "create", "readme"], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()  # fmt: skip
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env.update(NAS_URL=url, NAS_API_KEY=key)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(NAS), "serve", "--no-access-log", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        subprocess.run(
            [sys.executable, "-c",
             f"from nas_service.client import NasClient; NasClient('{url}').wait_ready(120)"],
            check=True, timeout=150,
        )  # fmt: skip
        tiny = work / "tiny.yaml"
        tiny.write_text(TINY_JOB.format(name="readme"))
        watched = _run(f"nas submit {tiny} --watch --interval 0.5", work, env)
        assert watched.returncode == 0, watched.stderr + log.read_text()[-3000:]
        job = watched.stdout.strip().splitlines()[0]
        # One progress bar per stage on stderr, then how it ended.
        assert "training" in watched.stderr and "searching" in watched.stderr
        assert "succeeded" in watched.stderr
        rows = httpx.get(f"{url}/api/v1/jobs/{job}/candidates",
                         headers={"Authorization": f"Bearer {key}"}).json()["items"]  # fmt: skip
        # Jobs to delete (the finished one is kept for the later lines; another reuses it).
        victims = [_run(f"nas submit {tiny}", work, env).stdout.strip() for _ in range(2)]
        for victim in victims:
            assert _run(f"nas cancel {victim}", work, env).returncode == 0
        for victim in victims:
            for _ in range(240):
                if _status(url, key, victim) in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(0.5)
        spare = _run("nas datasets upload mydata.npz --name spare --json", work, env)
        dataset = re.search(r'"id": "([0-9a-f-]+)"', spare.stdout)
        assert dataset, spare.stdout + spare.stderr
        fill = {"CANDIDATE": str(rows[0]["id"]), "DATASET": dataset.group(1), "NAME": "readme2"}
        for cmd in readme_commands():
            line = re.sub(r"\s*\[[^\]]*\]", "", cmd)  # optional parts left out
            deleting = "delete JOB" in line or ("-X DELETE" in line and "JOB" in line)
            fill["JOB"] = victims.pop() if deleting else job
            for placeholder, value in fill.items():
                line = re.sub(rf"\b{placeholder}\b", value, line)
            if line.startswith("nas submit") and "--watch" in line:
                # Watching the mbv3 example means many minutes of training: it is submitted as
                # written otherwise (and cancelled at the end).
                line = line.replace(" --watch", "")
            done = _run(line, work, env)
            assert "Traceback" not in done.stderr, (line, done.stderr)
            if re.match(r"nas (cancel|retry) ", line):
                # A finished job cannot be cancelled, a succeeded one is not retried: one line.
                assert done.returncode == 1, (line, done.stdout, done.stderr)
                assert done.stderr.startswith("error: "), (line, done.stderr)
                continue
            assert done.returncode == 0, (line, done.returncode, done.stdout, done.stderr)
            body = done.stdout.strip()
            if line.startswith("curl ") and body.startswith("{"):
                # As written the curl lines print the body: never a problem document.
                assert '"status":4' not in body.replace(" ", ""), (line, body)
        assert victims == []
        assert (work / "subnet.onnx").stat().st_size > 0
        # The jobs the README's lines started (the mbv3 example trains for minutes) are
        # cancelled, so that the dispatcher is free for the example script's job.
        auth = {"Authorization": f"Bearer {key}"}
        listed = httpx.get(f"{url}/api/v1/jobs", params={"limit": 100}, headers=auth).json()
        active = [str(r["id"]) for r in listed["items"] if r["status"] in ("queued", "running")]
        for job_id in active:
            _run(f"nas cancel {job_id}", work, env)
        for job_id in active:
            for _ in range(240):
                if _status(url, key, job_id) in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(0.5)
        # The Python client's example script (README, "The Python client") on the same server.
        example = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "client_example.py"), str(tiny),
             "-o", str(work), "--timeout", "300"],
            env=env, capture_output=True, text=True, timeout=360,
        )  # fmt: skip
        assert example.returncode == 0, f"{example.stdout}\n{example.stderr}"
        lines = example.stdout.splitlines()
        assert lines[0].startswith("submitted ") and lines[1].startswith("succeeded after ")
        assert lines[-1].startswith("downloaded candidate ")
        saved = Path(lines[-1].split(" to ", 1)[1])
        assert saved.parent == work and saved.suffix == ".pt" and saved.stat().st_size > 0
    finally:
        server.terminate()
        server.wait(timeout=60)
