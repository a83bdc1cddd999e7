"""``make run``: from a fresh checkout to a finished search on the embedded store.

Migrates the SQLite store in the data directory (``NAS_DATA_DIR``, default
``$XDG_DATA_HOME/nas`` or ``~/.local/share/nas``; or whatever ``NAS_DATABASE_URL`` names),
creates an API key, starts ``nas serve`` (API + dashboard + dispatcher on local Ray), submits
``examples/digits-quick.yaml``, prints the dashboard URL and the key, follows the job to its
end, prints the Pareto front and keeps serving until Ctrl-C. ``--exit-when-done`` (or
``NAS_QUICKSTART_EXIT=1``) stops the service once the job has ended instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from nas_service.cli import create_api_key, dashboard_url, load_job_file, watch
from nas_service.cli_serve import child_env, migrate_store, stop_process
from nas_service.cli_view import front_table
from nas_service.client import ConnectionFailed, NasClient
from nas_service.settings import Settings

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "digits-quick.yaml"


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def start_service(
    settings: Settings, host: str, port: int, log_path: Path
) -> subprocess.Popen[bytes]:
    """``nas serve`` in its own session, logging to a file so the terminal shows progress."""
    cmd = [sys.executable, "-m", "nas_service.cli", "serve", "--host", host, "--port", str(port)]
    cmd += ["--no-migrate", "--no-access-log"]  # migrated already, once, before anything else
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            cmd, env=child_env(settings), start_new_session=True, stdout=log, stderr=log
        )


def wait_ready(client: NasClient, service: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not client.ready():
        if service.poll() is not None:
            raise SystemExit(
                f"the service exited with code {service.returncode} while starting; "
                "see the service log"
            )
        if time.monotonic() > deadline:
            raise SystemExit(f"the service was not ready after {timeout:.0f}s")
        time.sleep(0.5)


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m nas_service.quickstart", description=__doc__)
    p.add_argument("--job", type=Path, default=EXAMPLE, help="job file to submit")
    p.add_argument("--port", type=int, default=None, help="port (default: NAS_API_PORT or free)")
    p.add_argument(
        "--exit-when-done",
        action="store_true",
        default=os.environ.get("NAS_QUICKSTART_EXIT", "") not in ("", "0", "false"),
        help="stop the service when the job ends (env NAS_QUICKSTART_EXIT=1)",
    )
    p.add_argument("--ready-timeout", type=float, default=180.0)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings()
    host = settings.api_host
    port = args.port or settings.api_port
    if not port_is_free(host, port):
        port = free_port(host)
    url = f"http://{host}:{port}"
    spec = load_job_file(args.job)

    print(f"data dir: {settings.data_dir}\nstore: {settings.database_url}", flush=True)
    migrate_store(settings)
    key = create_api_key(f"quickstart-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}", settings)

    signal.signal(signal.SIGTERM, _raise_interrupt)
    log_path = settings.data_dir / "service.log"
    service = start_service(settings, host, port, log_path)
    print(f"service log: {log_path}", flush=True)
    code = 1
    try:
        with NasClient(url, key) as client:
            wait_ready(client, service, args.ready_timeout)
            job = client.submit_job(spec)
            job_id = str(job["id"])
            print(
                f"\nDashboard: {url}/\nAPI key:   {key}\nJob:       {dashboard_url(url, job_id)}\n"
                f"CLI:       export NAS_URL={url} NAS_API_KEY={key}\n",
                flush=True,
            )
            started = time.monotonic()
            code = watch(client, job_id, interval=1.0, out=sys.stdout)
            print(f"job finished in {time.monotonic() - started:.0f}s", flush=True)
            front, _ = client.pareto(job_id)
            print(
                "\nPareto front:\n" + front_table(front or {}, client.get_job(job_id)), flush=True
            )
            if not args.exit_when_done:
                print(f"\nServing at {url}/ ; Ctrl-C to stop.", flush=True)
                service.wait()
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
        code = 130 if code == 1 else code
    except ConnectionFailed as e:
        print(f"lost the service ({e}); see {log_path}", file=sys.stderr, flush=True)
    finally:
        stop_process(service, grace_s=45.0)
    return code


if __name__ == "__main__":
    sys.exit(main())
