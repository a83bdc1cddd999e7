"""The Python client end to end: submit a job, wait for it, read its Pareto front, download a
subnet.

    export NAS_URL=http://127.0.0.1:8000 NAS_API_KEY=nas_...   # nas keys create NAME
    .venv/bin/python examples/client_example.py [JOB_FILE] [--format onnx] [-o DIR]

It needs a running service with a dispatcher (``nas serve``, or ``make run``). The job file
defaults to ``examples/digits-quick.yaml`` (about a minute on two cores). Exit codes: 0 a front
and a downloaded subnet, 1 an error or a job that failed or was cancelled, 3 a job that ended
without a subnet meeting its bounds.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from nas_service.client import ApiError, NasClient, NasError

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("job_file", nargs="?", type=Path, default=HERE / "digits-quick.yaml")
    p.add_argument("--format", default="weights", help="weights, torchscript or onnx")
    p.add_argument("-o", "--output", type=Path, default=Path("."), help="where to save it")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the job")
    args = p.parse_args(argv)

    url = os.environ.get("NAS_URL", "http://127.0.0.1:8000")
    key = os.environ.get("NAS_API_KEY")
    if not key:
        print("set NAS_API_KEY (create one with: nas keys create NAME)", file=sys.stderr)
        return 1
    spec = yaml.safe_load(args.job_file.read_text(encoding="utf-8"))

    try:
        with NasClient(url, key) as nas:
            # 1. Submit: the whole spec is checked first; a bad field is an ApiError (422)
            #    whose field_errors name each field and why.
            job = nas.submit_job(spec)
            print(f"submitted {job['id']} ({job['status']})")

            # 2. Wait until it ends (succeeded, failed or cancelled), polling once a second.
            job = nas.wait(job["id"], timeout=args.timeout, interval=1.0)
            print(f"{job['status']} after {job.get('elapsed_s') or 0:.0f}s")
            if job["status"] != "succeeded":
                print(f"error: {job.get('error')}", file=sys.stderr)
                return 1

            # 3. The front: measured candidates, one front per device of the job.
            front, _etag = nas.pareto(job["id"])
            points = (front or {}).get("front") or []
            if not points:
                outcome = job.get("outcome") or {}
                print(outcome.get("message", "the front is empty"))
                return 3
            for c in points:
                print(
                    f"  {c['id']:>6}  {c['device']:<10} acc(val) {c['accuracy']}  "
                    f"acc(test) {c.get('test_accuracy')}  {c['latency_ms']} ms  "
                    f"{c['params']} params  {c['arch_short']}"
                )
            # The same list with the server's filters and sorting: the most accurate first.
            best = nas.candidates(job["id"], pareto=True, sort="accuracy", order="desc", limit=1)[0]

            # 4. Download it; the server exports on first request (202 until ready), the
            #    client waits and writes the file atomically.
            path = nas.download_subnet(str(best["id"]), args.format, args.output)
            print(f"downloaded candidate {best['id']} to {path}")
    except ApiError as e:  # the API refused: e.status, e.code, e.field_errors, e.problem
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (NasError, TimeoutError) as e:  # not reachable, or still running at --timeout
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
