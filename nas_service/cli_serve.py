"""``nas serve``: the API (uvicorn, in this process) plus the job dispatcher as a child process.

The dispatcher is ``python -m workers.runtime.dispatcher`` started with the same ``NAS_*``
environment; it is imported by module name only, so the service package never imports the
workers. Ctrl-C or SIGTERM stops uvicorn gracefully, then the dispatcher (SIGTERM, then SIGKILL
after a grace period).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from nas_service.settings import Settings

log = logging.getLogger("nas.serve")
DISPATCHER_MODULE = "workers.runtime.dispatcher"
STOP_GRACE_S = 30.0


def child_env(settings: Settings) -> dict[str, str]:
    """The environment for a child process: ours, with every resolved setting made explicit
    (paths absolute), so both processes see the same store, data directory and limits."""
    env = dict(os.environ)
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        if name == "data_dir":
            value = str(Path(value).resolve())
        # Lists and mappings as JSON, which is how the settings read them back.
        env[f"NAS_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


def start_dispatcher(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    """The dispatcher as a child process (``args``: its options, e.g. ``--max-jobs 2``)."""
    # A new session: a Ctrl-C in the terminal reaches only us, and we stop the child in order.
    return subprocess.Popen(
        [sys.executable, "-m", DISPATCHER_MODULE, *args],
        env=child_env(settings),
        start_new_session=True,
    )


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            log.warning("dispatcher did not stop in %.0fs; killing it", grace_s)
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def migrate_store(settings: Settings) -> None:
    from nas_service.db import Database, migrate

    db = Database(settings.database_url)
    try:
        migrate.upgrade(db.engine)
    finally:
        db.dispose()


def build_app(settings: Settings) -> Any:
    from nas_service.api import create_app

    return create_app(settings)


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    dispatcher: bool = True,
    migrate: bool = False,
    access_log: bool = True,
) -> int:
    import uvicorn
    from sqlalchemy.engine import make_url

    from nas_service.api.app import KEEP_ALIVE_S

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    store = make_url(settings.database_url).render_as_string(hide_password=True)
    log.info("data dir %s; store %s", settings.data_dir, store)
    if migrate:
        migrate_store(settings)
    app = build_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=access_log,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    server = uvicorn.Server(config)
    stopping = threading.Event()
    child_failed = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # uvicorn installs its own handlers while it runs and re-raises what it caught once it
        # has shut down; this handler then receives it instead of the default (which would
        # kill us before the dispatcher is stopped).
        stopping.set()
        server.should_exit = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    proc = start_dispatcher(settings) if dispatcher else None

    def watch_child() -> None:
        assert proc is not None
        while not stopping.wait(1.0):
            code = proc.poll()
            if code is not None:
                log.error("dispatcher exited with code %s; stopping the server", code)
                child_failed.set()
                server.should_exit = True
                return

    if proc is not None:
        threading.Thread(target=watch_child, name="dispatcher-watch", daemon=True).start()
        log.info("dispatcher started (pid %d)", proc.pid)
    try:
        server.run()
    finally:
        stopping.set()
        if proc is not None:
            code = stop_process(proc)
            log.info("dispatcher stopped (exit code %s)", code)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if child_failed.is_set() else 0
