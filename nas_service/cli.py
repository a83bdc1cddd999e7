"""The ``nas`` command line.

Everything but ``serve`` and ``keys create`` talks to the REST API through
:class:`nas_service.client.NasClient`; the server URL and key come from ``--url`` / ``--key`` or
``NAS_URL`` / ``NAS_API_KEY``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from nas_service.catalog import exports
from nas_service.cli_serve import serve
from nas_service.cli_view import StageBars, front_table, job_line, outcome_text
from nas_service.client import DEFAULT_URL, ApiError, NasClient
from nas_service.settings import Settings

# `--watch` exits with this when the job finished but no subnet met the bounds.
NO_FEASIBLE_EXIT = 3


def _client(args: argparse.Namespace) -> NasClient:
    if not args.key:
        raise SystemExit("no API key: pass --key or set NAS_API_KEY (create one: nas keys create)")
    return NasClient(args.url, args.key)


def load_job_file(path: Path) -> dict[str, Any]:
    """A job spec from YAML or JSON; the API validates the content."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SystemExit(f"cannot read {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise SystemExit(f"{path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise SystemExit(f"{path} must hold a mapping (the job spec), not {type(data).__name__}")
    return data


def dashboard_url(base_url: str, job_id: str | None = None) -> str:
    base = base_url.rstrip("/") + "/"
    return f"{base}#/jobs/{job_id}" if job_id else base


# -- commands -------------------------------------------------------------------------------


def cmd_submit(args: argparse.Namespace) -> int:
    spec = load_job_file(Path(args.file))
    if args.name:
        spec["name"] = args.name
    if args.supernet_from:
        spec["supernet_from"] = args.supernet_from
    with _client(args) as c:
        job = c.submit_job(spec)
        job_id = str(job["id"])
        print(job_id)
        print(dashboard_url(args.url, job_id), file=sys.stderr)
        if args.watch:
            return watch(c, job_id, interval=args.interval)
    return 0


def watch(c: NasClient, job_id: str, interval: float = 1.0, out: Any = None) -> int:
    """Follow a job to its end: a progress bar per stage and the front each time it changes."""
    stream = out or sys.stderr
    bars = StageBars(stream)
    etag: str | None = None
    final: dict[str, Any] = {}
    try:
        for job in c.follow(job_id, interval=interval):
            final = job
            bars.update(job)
            front, etag_new = c.pareto(job_id, etag)
            if front is not None and etag_new != etag:
                etag = etag_new
                if front.get("front"):
                    bars.write(front_table(front, job))
    finally:
        bars.close()
    print(job_line(final), file=stream)
    if final.get("error"):
        print(f"error: {final['error']}", file=stream)
    why = outcome_text(final.get("outcome"))
    if why:
        print(why, file=stream)
        return NO_FEASIBLE_EXIT
    return 0 if final.get("status") == "succeeded" else 1


def cmd_watch(args: argparse.Namespace) -> int:
    with _client(args) as c:
        return watch(c, args.job, interval=args.interval)


def cmd_pareto(args: argparse.Namespace) -> int:
    with _client(args) as c:
        front, _ = c.pareto(args.job)
        if args.json:
            print(json.dumps(front, indent=2))
        else:
            print(front_table(front or {}, c.get_job(args.job)))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    with _client(args) as c:
        dest = Path(args.output) if args.output else None
        path = c.download_subnet(args.candidate, args.format, dest, timeout=args.timeout)
    print(path)
    return 0


def cmd_spaces(args: argparse.Namespace) -> int:
    with _client(args) as c:
        for space in c.search_spaces():
            sid = space.get("id") or space.get("name")
            print(f"{sid}\t{space.get('description', '')}")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    with _client(args) as c:
        for job in c.list_jobs(status=args.status):
            print(job_line(job))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as c:
        print(job_line(c.cancel_job(args.job)))
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    with _client(args) as c:
        print(job_line(c.retry_job(args.job)))
    return 0


def create_api_key(name: str, settings: Settings | None = None) -> str:
    """Create a key directly in the configured store (the one command that bypasses REST).
    The embedded SQLite store is migrated first, so this works on a fresh checkout."""
    from nas_service.db import Database, keys, migrate

    settings = settings or Settings()
    db = Database(settings.database_url)
    try:
        if settings.is_sqlite:
            migrate.upgrade(db.engine)
        with db.transaction() as s:
            if keys.get_key_by_name(s, name) is not None:
                raise SystemExit(f"a key named {name!r} exists already; choose another name")
            _, key = keys.create_key(s, name)
    finally:
        db.dispose()
    return key


def cmd_keys_create(args: argparse.Namespace) -> int:
    key = create_api_key(args.name)
    print(key)
    print(f"export NAS_API_KEY={key}", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = Settings()
    return serve(
        settings,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        dispatcher=not args.no_dispatcher,
        migrate=settings.is_sqlite if args.migrate is None else args.migrate,
        access_log=not args.no_access_log,
    )


# -- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nas", description="Neural architecture search service")
    p.add_argument("--url", default=os.environ.get("NAS_URL", DEFAULT_URL), help="server URL")
    p.add_argument("--key", default=os.environ.get("NAS_API_KEY"), help="API key")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="run the API, the dashboard and the job dispatcher")
    s.add_argument("--host", default=None, help="bind address (default: NAS_API_HOST)")
    s.add_argument("--port", type=int, default=None, help="port (default: NAS_API_PORT)")
    s.add_argument("--no-dispatcher", action="store_true", help="serve the API only")
    s.add_argument("--no-access-log", action="store_true", help="do not log every request")
    s.add_argument(
        "--migrate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="upgrade the schema first (default: only for the embedded SQLite store)",
    )
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("submit", help="submit a job file (YAML or JSON); prints the job id")
    s.add_argument("file")
    s.add_argument("--name", help="override the job name")
    s.add_argument("--supernet-from", metavar="JOB", help="reuse this job's trained supernet")
    s.add_argument(
        "--watch",
        action="store_true",
        help="follow the job until it ends (exit 0: a front; 1: failed or cancelled; "
        f"{NO_FEASIBLE_EXIT}: finished, but no subnet meets the bounds)",
    )
    s.add_argument("--interval", type=float, default=1.0)
    s.set_defaults(func=cmd_submit)

    s = sub.add_parser(
        "watch",
        help="follow a job: progress per stage and the current front (exit codes as submit)",
    )
    s.add_argument("job")
    s.add_argument("--interval", type=float, default=1.0)
    s.set_defaults(func=cmd_watch)

    s = sub.add_parser("pareto", help="print a job's Pareto front")
    s.add_argument("job")
    s.add_argument("--json", action="store_true", help="print the raw JSON answer")
    s.set_defaults(func=cmd_pareto)

    s = sub.add_parser("download", help="download an exported subnet (waits for the export)")
    s.add_argument("candidate")
    s.add_argument("--format", choices=exports.names(), default="weights")
    s.add_argument("-o", "--output", help="file or directory to write to")
    s.add_argument("--timeout", type=float, default=600.0)
    s.set_defaults(func=cmd_download)

    s = sub.add_parser("spaces", help="list the search spaces")
    s.set_defaults(func=cmd_spaces)

    s = sub.add_parser("jobs", help="list jobs")
    s.add_argument("--status")
    s.set_defaults(func=cmd_jobs)

    s = sub.add_parser("cancel", help="cancel a job")
    s.add_argument("job")
    s.set_defaults(func=cmd_cancel)

    s = sub.add_parser("retry", help="retry a failed or cancelled job")
    s.add_argument("job")
    s.set_defaults(func=cmd_retry)

    keys = sub.add_parser("keys", help="manage API keys (talks to the database directly)")
    ksub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    s = ksub.add_parser("create", help="create a key and print it (shown once)")
    s.add_argument("--name", required=True)
    s.set_defaults(func=cmd_keys_create)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ApiError as e:
        print(str(e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
