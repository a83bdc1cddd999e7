"""API under load: many concurrent dashboards polling a job while it trains.

Sets up its own service on PostgreSQL (a scratch database, migrated), creates a key, starts
``nas serve`` (API + dispatcher + local Ray), submits a training job, then:

1. a quiet window: the job trains with no pollers (its epoch throughput is the baseline);
2. a load window: ``--clients`` pollers, each doing what the dashboard does every
   ``--interval`` seconds: ``GET /jobs/{id}/pareto`` with ``If-None-Match`` and
   ``GET /jobs/{id}``.

Reports throughput, p50/p90/p99/max latency per endpoint, errors (any status other than 200/304,
or a transport error), and how much the job's training throughput dropped under load. Bounded
in clients, requests and time. Writes ``benchmarks/results/api_load.json``.

Run: ``python -m benchmarks.api_load [--clients 100] [--duration 30] [--interval 1.0]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import uvloop
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

RESULTS = Path(__file__).parent / "results" / "api_load.json"
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/nas_bench"
# A small MobileNetV3 supernet on digits: epochs of a few seconds, and enough of them that both
# windows hold several epoch reports (an MLP finishes training before the load window opens on
# a quiet machine). The job is cancelled at the end.
JOB = {
    "name": "load benchmark",
    "space": {
        "id": "mbv3",
        "options": {"small_input": True, "resolutions": [8], "width_mult": 0.35},
    },
    "dataset": {"name": "digits"},
    "training": {"preset": "default", "epochs_scale": 8.0},
    "search": {"algorithm": "random", "budget": 20},
    "devices": ["cpu"],
    "seed": 0,
}


def fresh_database(url: str) -> None:
    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}_optuna" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}_optuna"'))
    admin.dispose()


def percentile(sorted_ms: list[float], q: float) -> float | None:
    if not sorted_ms:
        return None
    k = min(len(sorted_ms) - 1, max(0, round(q * (len(sorted_ms) - 1))))
    return round(sorted_ms[k], 2)


def summarise(samples: list[float], errors: int, seconds: float) -> dict[str, Any]:
    s = sorted(samples)
    return {
        "requests": len(s) + errors,
        "errors": errors,
        "throughput_rps": round((len(s) + errors) / seconds, 1) if seconds > 0 else None,
        "p50_ms": percentile(s, 0.50),
        "p90_ms": percentile(s, 0.90),
        "p99_ms": percentile(s, 0.99),
        "max_ms": round(s[-1], 2) if s else None,
        "mean_ms": round(statistics.fmean(s), 2) if s else None,
    }


class Connection:
    """One kept-alive HTTP/1.1 connection, as one dashboard tab holds. A minimal client on
    purpose: the pollers share this machine with the service, and a general-purpose async
    client costs about twice the CPU per request that the service itself does, which would
    show up as the service's latency."""

    def __init__(self, host: str, port: int, key: str):
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {key}\r\nHost: {host}:{port}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(f"GET {path} HTTP/1.1\r\n{self.auth}{extra}\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        hdrs = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        if "chunked" in hdrs.get("transfer-encoding", ""):
            raise RuntimeError("chunked responses are not expected from these endpoints")
        length = int(hdrs.get("content-length", "0"))
        if length:
            await self.reader.readexactly(length)
        if hdrs.get("connection", "").lower() == "close":
            self.close()
        return status, hdrs

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def poller(
    conn: Connection,
    job_id: str,
    stop_at: float,
    interval: float,
    max_requests: int,
    out: dict[str, list[float]],
    errs: dict[str, int],
    codes: dict[str, int],
    offset: float,
) -> None:
    etag: str | None = None
    sent = 0
    # Spread the first requests over one interval, as independent dashboards would be.
    await asyncio.sleep(offset)
    while time.monotonic() < stop_at and sent < max_requests:
        tick = time.monotonic()
        for name, path, headers in (
            ("pareto", f"/api/v1/jobs/{job_id}/pareto", {"If-None-Match": etag} if etag else {}),
            ("job", f"/api/v1/jobs/{job_id}", {}),
        ):
            t0 = time.perf_counter()
            try:
                status, hdrs = await asyncio.wait_for(conn.get(path, headers), timeout=10.0)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, RuntimeError) as e:
                conn.close()
                errs[name] += 1
                codes[type(e).__name__] = codes.get(type(e).__name__, 0) + 1
                continue
            ms = (time.perf_counter() - t0) * 1000
            codes[str(status)] = codes.get(str(status), 0) + 1
            if status in (200, 304):
                out[name].append(ms)
                if name == "pareto" and status == 200:
                    etag = hdrs.get("etag") or etag
            else:
                errs[name] += 1
            sent += 1
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - tick)))


async def load(
    url: str, key: str, job_id: str, clients: int, duration: float, interval: float, cap: int
) -> dict[str, Any]:
    out: dict[str, list[float]] = {"pareto": [], "job": []}
    errs = {"pareto": 0, "job": 0}
    codes: dict[str, int] = {}
    parsed = httpx.URL(url)
    conns = [Connection(parsed.host, parsed.port or 80, key) for _ in range(clients)]
    t0 = time.monotonic()
    stop_at = t0 + duration
    per_client = max(1, cap // clients)
    try:
        await asyncio.gather(
            *(
                poller(conn, job_id, stop_at, interval, per_client, out, errs, codes, off)
                for conn, off in zip(
                    conns, (interval * i / clients for i in range(clients)), strict=True
                )
            )
        )
    finally:
        for conn in conns:
            conn.close()
    seconds = time.monotonic() - t0
    all_ms = out["pareto"] + out["job"]
    return {
        "seconds": round(seconds, 1),
        "all": summarise(all_ms, errs["pareto"] + errs["job"], seconds),
        "pareto": summarise(out["pareto"], errs["pareto"], seconds),
        "job": summarise(out["job"], errs["job"], seconds),
        "status_codes": codes,
    }


def summarise_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the repeats (the machine is shared and noisy), errors summed."""

    def med(values: list[float | None]) -> float | None:
        xs = [v for v in values if v is not None]
        return round(statistics.median(xs), 2) if xs else None

    return {
        "throughput_rps": med([r["all"]["throughput_rps"] for r in runs]),
        "p50_ms": med([r["all"]["p50_ms"] for r in runs]),
        "p99_ms": med([r["all"]["p99_ms"] for r in runs]),
        "p99_ms_per_run": [r["all"]["p99_ms"] for r in runs],
        "errors_total": sum(r["all"]["errors"] for r in runs),
        "training_slowdown_percent": med([r["training_slowdown_percent"] for r in runs]),
    }


def epoch_throughput(client: httpx.Client, job_id: str, t_from: float, t_to: float) -> float | None:
    """Mean training throughput (images/s) of the epochs that ended inside [t_from, t_to]."""
    rows = client.get(f"/api/v1/jobs/{job_id}/metrics").json()
    items = rows["items"] if isinstance(rows, dict) else rows
    values = []
    for r in items:
        ts = r.get("ts")
        m = r.get("metrics", {})
        if ts is None or not isinstance(m.get("throughput"), int | float):
            continue
        t = datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()
        if t_from <= t <= t_to:
            values.append(float(m["throughput"]))
    return round(statistics.fmean(values), 1) if values else None


def wait_training(client: httpx.Client, job_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in ("failed", "cancelled", "succeeded"):
            raise RuntimeError(
                f"job ended before the benchmark: {job['status']} {job.get('error')}"
            )
        if job.get("stage") == "training":
            rows = client.get(f"/api/v1/jobs/{job_id}/metrics").json()["items"]
            if rows:  # the first epoch has been reported: training is under way
                return
        time.sleep(1.0)
    raise RuntimeError("the job did not start training in time")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--duration", type=float, default=30.0, help="seconds of each window")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between polls per client")
    p.add_argument("--max-requests", type=int, default=20000, help="cap over all clients")
    p.add_argument("--repeats", type=int, default=3, help="quiet + load window pairs")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--database-url", default=os.environ.get("NAS_BENCH_DATABASE_URL", DEFAULT_DB))
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if not 1 <= args.clients <= 1000 or not 1 <= args.duration <= 300:
        raise SystemExit("clients must be in [1, 1000] and duration in [1, 300] s")
    if not 1 <= args.repeats <= 10:
        raise SystemExit("repeats must be in [1, 10]")

    from nas_service.cli import create_api_key
    from nas_service.cli_serve import child_env, migrate_store
    from nas_service.settings import Settings

    fresh_database(args.database_url)
    data_dir = Path(os.environ.get("NAS_BENCH_DATA_DIR", "var/bench"))
    settings = Settings(database_url=args.database_url, data_dir=data_dir)
    migrate_store(settings)
    key = create_api_key("load-benchmark", settings)
    url = f"http://127.0.0.1:{args.port}"
    cmd = [sys.executable, "-m", "nas_service.cli", "serve", "--port", str(args.port)]
    # No access log: a line per request would cost the server more than some requests do.
    runs: list[dict[str, Any]] = []
    service = subprocess.Popen(
        [*cmd, "--no-migrate", "--no-access-log"],
        env=child_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as c:
            for _ in range(120):
                try:
                    if c.get("/api/v1/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            job_id = c.post("/api/v1/jobs", json=JOB).raise_for_status().json()["id"]
            wait_training(c, job_id, timeout=300)
            for i in range(args.repeats):
                q0 = time.time()
                time.sleep(args.duration)
                q1 = time.time()
                result = uvloop.run(
                    load(
                        url,
                        key,
                        job_id,
                        args.clients,
                        args.duration,
                        args.interval,
                        args.max_requests,
                    )
                )
                l1 = time.time()
                time.sleep(3.0)  # let the last epoch of the load window be reported
                quiet = epoch_throughput(c, job_id, q0, q1)
                loaded = epoch_throughput(c, job_id, q1, l1)
                slowdown = round(100 * (1 - loaded / quiet), 1) if quiet and loaded else None
                result["training_throughput_images_per_s"] = {"quiet": quiet, "under_load": loaded}
                result["training_slowdown_percent"] = slowdown
                runs.append(result)
                print(
                    f"repeat {i + 1}/{args.repeats}: p99 {result['all']['p99_ms']} ms", flush=True
                )
            c.post(f"/api/v1/jobs/{job_id}/cancel")
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(timeout=60)
        except subprocess.TimeoutExpired:
            service.kill()
    report = {
        "benchmark": "api_load",
        "command": "python -m benchmarks.api_load " + " ".join(argv or sys.argv[1:]),
        "store": "postgresql",
        "clients": args.clients,
        "interval_s": args.interval,
        "window_s": args.duration,
        "repeats": args.repeats,
        "requests_per_poll": ["GET /jobs/{id}/pareto (If-None-Match)", "GET /jobs/{id}"],
        "median": summarise_runs(runs),
        "runs": runs,
        "target": {"p99_ms": 50, "errors": 0},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    med = report["median"]
    report["met"] = bool(
        med["p99_ms"] is not None and med["p99_ms"] < 50 and med["errors_total"] == 0
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
