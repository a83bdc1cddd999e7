"""The dispatcher: claims queued jobs and runs each as a Ray task, with heartbeats, a reaper
for jobs whose worker died, cancellation, and the export requests users make.

``python -m workers.runtime.dispatcher`` (settings from ``NAS_*``): local Ray by default, or the
cluster at ``NAS_RAY_ADDRESS``. A dispatcher killed with SIGKILL leaves its jobs ``running`` with a
heartbeat that goes stale; any dispatcher's reaper puts them back to ``queued`` and they resume
from their last checkpoint. SIGTERM stops claiming, stops this dispatcher's jobs and puts them
back to ``queued`` at once, then exits.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import ray

from nas_service.db import Database, jobs
from nas_service.db import artifacts as arts
from nas_service.domain import JobStatus
from nas_service.domain.states import TERMINAL
from nas_service.services.capacity import write_capacity
from nas_service.settings import Settings

log = logging.getLogger("workers.runtime.dispatcher")

JobFn = Callable[[str, dict[str, Any], str], str]
ExportFn = Callable[[int, dict[str, Any]], bool]


def _run_job(job_id: str, settings: dict[str, Any], worker_id: str) -> str:
    from workers.runtime.runner import run_job

    return run_job(job_id, Settings(**settings), worker_id)


def _run_export(artifact_id: int, settings: dict[str, Any]) -> bool:
    from workers.runtime.runner import run_export

    return run_export(artifact_id, Settings(**settings))


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Running:
    job_id: uuid.UUID
    ref: Any  # ray.ObjectRef
    started: float
    cancel_seen: float | None = None
    ended_seen: float | None = None  # when the store first showed the job finished by its task


@dataclass
class DispatcherConfig:
    max_jobs: int = 1
    max_exports: int = 2
    poll_s: float = 0.5
    # After a cancel request the runner stops at its next step; past this grace the task is
    # killed and the job marked cancelled by the dispatcher.
    cancel_grace_s: float = 30.0
    reap_every_s: float = 5.0
    extra: dict[str, Any] = field(default_factory=dict)


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        *,
        config: DispatcherConfig | None = None,
        worker_id: str | None = None,
        job_fn: JobFn = _run_job,
        export_fn: ExportFn = _run_export,
    ):
        self.settings = settings
        self.config = config or DispatcherConfig()
        self.worker_id = worker_id or new_worker_id()
        self.db = Database(settings.database_url)
        self._job_task = ray.remote(num_cpus=0, max_retries=0)(job_fn)
        self._export_task = ray.remote(num_cpus=0, max_retries=0)(export_fn)
        self._settings_blob = settings.model_dump(mode="json")
        self.running: dict[uuid.UUID, Running] = {}
        self.exports: dict[int, Any] = {}
        self.outcomes: dict[uuid.UUID, str] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._last_reap = 0.0
        self._last_capacity = -1e18
        # Reap often enough that a lost job is back in the queue soon after it goes stale.
        self._reap_every = min(
            self.config.reap_every_s, settings.stale_after_s / 2, settings.stall_after_s / 2
        )
        self._hb_thread: threading.Thread | None = None

    # ----- lifecycle --------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to end (safe from a signal handler)."""
        self._stop.set()

    def run(self, *, until: Callable[[], bool] | None = None) -> None:
        """Loop until ``stop()`` (or ``until()`` is true), then shut down cleanly."""
        self._hb_thread = threading.Thread(target=self._heartbeats, name="heartbeats", daemon=True)
        self._hb_thread.start()
        log.info("dispatcher %s started", self.worker_id)
        try:
            while not self._stop.is_set():
                try:
                    self.tick()
                except Exception:  # a database or Ray hiccup: log it and try again next round
                    log.exception("dispatch round failed")
                    self._stop.wait(min(5.0, 10 * self.config.poll_s))
                if until is not None and until():
                    break
                self._stop.wait(self.config.poll_s)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        self._stop.set()
        if self._hb_thread is not None and self._hb_thread is not threading.current_thread():
            self._hb_thread.join(timeout=10)
        with self._lock:
            running = list(self.running.values())
            self.running.clear()
            exports = dict(self.exports)
            self.exports.clear()
        for r in running:
            ray.cancel(r.ref, force=True)
            with self.db.transaction() as s:
                done = jobs.requeue_job(
                    s, r.job_id, f"dispatcher {self.worker_id} shut down", self.worker_id
                )
            log.info("job %s %s", r.job_id, "requeued" if done else "already moved on")
        for artifact_id, ref in exports.items():
            ray.cancel(ref, force=True)
            with self.db.transaction() as s:
                arts.release_export(s, artifact_id)
        self.db.dispose()

    # ----- one round ----------------------------------------------------------------------------
    def record_capacity(self) -> None:
        """Write the cluster's training capacity where the API checks submitted resources
        (``nas_service.services.capacity``)."""
        write_capacity(self.settings, cluster_nodes(), source=self.worker_id)

    def tick(self) -> None:
        self._collect()
        now = time.monotonic()
        if now - self._last_capacity >= self.settings.capacity_every_s:
            self._last_capacity = now
            try:
                self.record_capacity()
            except Exception:  # the data directory unwritable: submits fall back to limits
                log.exception("could not record the cluster capacity")
        if now - self._last_reap >= self._reap_every:
            self._last_reap = now
            self.reap()
        if self._stop.is_set():
            return
        while len(self.running) < self.config.max_jobs and not self._stop.is_set():
            if not self._claim():
                break
        free = self.config.max_exports - len(self.exports)
        if free > 0 and not self._stop.is_set():
            self._claim_exports(free)

    def reap(self) -> list[uuid.UUID]:
        with self.db.transaction() as s:
            ids = jobs.reap_stale(
                s,
                timedelta(seconds=self.settings.stale_after_s),
                max_attempts=self.settings.max_attempts,
            )
            stall = self.settings.stall_after_s
            stalled = jobs.reap_stalled(s, timedelta(seconds=stall))
        for jid in ids:
            log.warning("job %s had a stale heartbeat: requeued", jid)
        for jid in stalled:
            log.warning(
                "job %s made no progress for %g s: failed", jid, self.settings.stall_after_s
            )
        return ids

    def _claim(self) -> bool:
        with self.db.transaction() as s:
            job = jobs.claim_next_job(s, self.worker_id)
            if job is None:
                return False
            jid = job.id
        ref = self._job_task.remote(str(jid), self._settings_blob, self.worker_id)
        with self._lock:
            self.running[jid] = Running(jid, ref, time.monotonic())
        log.info("job %s claimed and started", jid)
        return True

    def _claim_exports(self, n: int) -> None:
        with self.db.transaction() as s:
            claimed = arts.claim_exports(s, self.worker_id, limit=n)
            ids = [a.id for a in claimed]
        for artifact_id in ids:
            with self._lock:
                self.exports[artifact_id] = self._export_task.remote(
                    artifact_id, self._settings_blob
                )

    def _collect(self) -> None:
        with self._lock:
            refs = [r.ref for r in self.running.values()] + list(self.exports.values())
        if not refs:
            return
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        done = set(ready)
        for r in [r for r in list(self.running.values()) if r.ref in done]:
            with self._lock:
                self.running.pop(r.job_id, None)
            try:
                outcome = str(ray.get(r.ref))
            except Exception as exc:  # the task itself died (worker crash, out of memory)
                outcome = self._fail(r.job_id, exc)
            self.outcomes[r.job_id] = outcome
            log.info("job %s ended: %s", r.job_id, outcome)
        for artifact_id, ref in [(a, f) for a, f in list(self.exports.items()) if f in done]:
            with self._lock:
                self.exports.pop(artifact_id, None)
            try:
                ray.get(ref)
            except Exception as exc:
                with self.db.transaction() as s:
                    arts.mark_artifact_failed(s, artifact_id, f"{type(exc).__name__}: {exc}")

    def _fail(self, job_id: uuid.UUID, exc: BaseException) -> str:
        status = JobStatus.failed
        error: str | None = f"worker task died: {type(exc).__name__}: {exc}"[:4000]
        if isinstance(exc, ray.exceptions.TaskCancelledError):
            status, error = JobStatus.cancelled, None
        with self.db.transaction() as s:
            done = jobs.finish_job(s, job_id, self.worker_id, status, error=error)
        return status.value if done is not None else "lost"

    # ----- heartbeats and cancellation -------------------------------------------------------
    def _not_ours(self, r: Running, now: float) -> None:
        """The heartbeat found the job no longer running under this worker."""
        ready, _ = ray.wait([r.ref], timeout=0)
        if ready:
            return  # it just finished; the next round collects its outcome
        with self.db.transaction() as s:
            job = jobs.get_job(s, r.job_id)
            ended_here = (
                job is not None
                and JobStatus(job.status) in TERMINAL
                and job.worker_id == self.worker_id
            )
        if ended_here:
            # The task recorded the end itself (succeeded, failed, cancelled) and is winding
            # down: leave it for _collect, unless it outstays the grace period.
            if r.ended_seen is None:
                r.ended_seen = now
            if now - r.ended_seen <= self.config.cancel_grace_s:
                return
        # Reaped and re-queued, or taken over by another worker: this task must not go on.
        log.warning("job %s is no longer ours; stopping its task", r.job_id)
        ray.cancel(r.ref, force=True)
        with self._lock:
            self.running.pop(r.job_id, None)
        self.outcomes[r.job_id] = job.status if ended_here and job is not None else "lost"

    def _heartbeats(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_interval_s):
            try:
                self.beat()
            except Exception:  # a database hiccup must not kill the heartbeat thread
                log.exception("heartbeat round failed")

    def beat(self) -> None:
        with self._lock:
            running = list(self.running.values())
        now = time.monotonic()
        for r in running:
            with self.db.transaction() as s:
                flag = jobs.heartbeat(s, r.job_id, self.worker_id)
            if flag is None:
                self._not_ours(r, now)
            elif flag:
                if r.cancel_seen is None:
                    r.cancel_seen = now
                elif now - r.cancel_seen > self.config.cancel_grace_s:
                    log.warning("job %s ignored its cancel for too long; killing it", r.job_id)
                    ray.cancel(r.ref, force=True)
                    with self._lock:
                        self.running.pop(r.job_id, None)
                    with self.db.transaction() as s:
                        jobs.finish_job(
                            s, r.job_id, self.worker_id, JobStatus.cancelled, message="killed"
                        )


def _parse_args(argv: list[str] | None) -> Any:
    import argparse

    p = argparse.ArgumentParser(prog="python -m workers.runtime.dispatcher", description=__doc__)
    p.add_argument("--max-jobs", type=int, default=1, help="jobs run at once by this dispatcher")
    p.add_argument("--max-exports", type=int, default=2, help="export requests made at once")
    p.add_argument("--poll", type=float, default=0.5, help="seconds between claim rounds")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray (default: all)")
    p.add_argument("--worker-id", default=None)
    return p.parse_args(argv)


def ray_auth_env(settings: Settings, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a client of the cluster at ``NAS_RAY_ADDRESS`` needs for Ray's token
    authentication.

    ``ray start --head`` (Ray >= 2.52) turns token authentication on whenever a token exists
    (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``), but a client that
    joins an explicit address does not: it must set ``RAY_AUTH_MODE=token`` itself. So: an
    explicit ``RAY_AUTH_MODE`` is kept; ``NAS_RAY_AUTH_TOKEN_PATH`` names the token file;
    otherwise token mode is on exactly when a token is found the way the head looks for it.
    """
    env = dict(os.environ if environ is None else environ)
    out: dict[str, str] = {}
    if settings.ray_auth_token_path is not None:
        out["RAY_AUTH_TOKEN_PATH"] = str(settings.ray_auth_token_path)
    if "RAY_AUTH_MODE" in env:
        return out
    token_file = out.get("RAY_AUTH_TOKEN_PATH") or env.get("RAY_AUTH_TOKEN_PATH")
    default = os.path.join(os.path.expanduser("~"), ".ray", "auth_token")
    has_token = bool(env.get("RAY_AUTH_TOKEN")) or any(
        p and os.path.isfile(p) and os.path.getsize(p) > 0 for p in (token_file, default)
    )
    if has_token:
        out["RAY_AUTH_MODE"] = "token"
    return out


def _reload_ray_auth() -> None:
    """Make this process's Ray read the auth variables again: it read them (and looked for a
    token) when it was imported."""
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def init_ray(settings: Settings, num_cpus: int | None = None) -> None:
    """Join ``NAS_RAY_ADDRESS`` (with the cluster's token, see :func:`ray_auth_env`) or start
    a local Ray; keep this process's SIGTERM handler (``ray.init`` installs its own, which
    would skip our clean shutdown)."""
    import signal

    previous = signal.getsignal(signal.SIGTERM)
    if settings.ray_address:
        auth = ray_auth_env(settings)
        if auth:
            os.environ.update(auth)
            _reload_ray_auth()
        ray.init(address=settings.ray_address, include_dashboard=False)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False)
    signal.signal(signal.SIGTERM, previous)


def cluster_nodes() -> list[dict[str, float]]:
    """CPUs and GPUs of every alive node of the connected cluster."""
    return [
        {"CPU": float(n["Resources"].get("CPU", 0.0)), "GPU": float(n["Resources"].get("GPU", 0.0))}
        for n in ray.nodes()
        if n.get("Alive")
    ]


def main(argv: list[str] | None = None) -> int:
    import signal

    logging.basicConfig(
        level=os.environ.get("NAS_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args = _parse_args(argv)
    settings = Settings()
    init_ray(settings, args.num_cpus)
    config = DispatcherConfig(
        max_jobs=args.max_jobs, max_exports=args.max_exports, poll_s=args.poll
    )
    dispatcher = Dispatcher(settings, config=config, worker_id=args.worker_id)

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping (jobs go back to the queue)", signum)
        dispatcher.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        dispatcher.run()
    finally:
        ray.shutdown()
    log.info("dispatcher %s stopped", dispatcher.worker_id)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
