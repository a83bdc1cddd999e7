"""The ``nas`` commands that talk to the REST API: jobs, candidates, the front, downloads,
datasets, devices and search spaces. Each prints its data on stdout (a table, or ``--json`` /
``-o json|yaml``) and remarks on stderr."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nas_service.cli_output import (
    EXIT_NO_FEASIBLE,
    CliError,
    Column,
    UsageError,
    cell,
    col,
    emit,
    note,
    short_time,
    table,
)
from nas_service.cli_view import StageBars, front_table, job_line, outcome_text, stage_fraction
from nas_service.client import TERMINAL_STATES, NasClient

Json = dict[str, Any]


def client(args: argparse.Namespace) -> NasClient:
    if not args.key:
        raise UsageError(
            "no API key",
            "pass --key or set NAS_API_KEY (create one on the server host: nas keys create NAME)",
        )
    from nas_service.client import InvalidUrl

    try:
        return NasClient(args.url, args.key)
    except InvalidUrl as e:
        raise UsageError(f"--url / NAS_URL: {e}") from None


def load_job_file(path: Path) -> Json:
    """A job spec from YAML or JSON; the API validates the content. Errors name the file."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise CliError(f"cannot read {path}: not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise CliError(f"{where}: not valid YAML or JSON: {what}") from None
    if not isinstance(data, dict):
        raise CliError(f"{path} must hold a mapping (the job spec), not {type(data).__name__}")
    return data


def dashboard_url(base_url: str, job_id: str | None = None) -> str:
    base = base_url.rstrip("/") + "/"
    return f"{base}#/jobs/{job_id}" if job_id else base


# -- jobs -----------------------------------------------------------------------------------

JOB_COLUMNS = [
    col("id"),
    col("status"),
    Column("STAGE", lambda j: j.get("stage")),
    Column("PROGRESS", lambda j: _percent(j)),
    Column("CREATED", lambda j: short_time(j.get("created_at"))),
    col("name"),
]


def _percent(job: Json) -> str:
    if job.get("status") in TERMINAL_STATES:
        return "-"
    frac = stage_fraction(job.get("progress"))
    return "-" if frac is None else f"{frac:.0%}"


def cmd_submit(args: argparse.Namespace) -> int:
    spec = load_job_file(Path(args.file))
    if args.name:
        spec["name"] = args.name
    if args.supernet_from:
        spec["supernet_from"] = args.supernet_from
    with client(args) as c:
        job = c.submit_job(spec)
        job_id = str(job["id"])
        emit(args.output_format, job, lambda: job_id)
        note(dashboard_url(args.url, job_id))
        if args.watch:
            return watch(c, job_id, interval=args.interval)
    return 0


def watch(c: NasClient, job_id: str, interval: float = 1.0, out: Any = None) -> int:
    """Follow a job to its end: a progress bar per stage and the front each time it changes.
    0: a front; 1: failed or cancelled; 3: finished, but no subnet meets the bounds."""
    stream = out or sys.stderr
    bars = StageBars(stream)
    etag: str | None = None
    final: Json = {}
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
        return EXIT_NO_FEASIBLE
    return 0 if final.get("status") == "succeeded" else 1


def cmd_watch(args: argparse.Namespace) -> int:
    with client(args) as c:
        return watch(c, args.job, interval=args.interval)


def cmd_jobs_list(args: argparse.Namespace) -> int:
    with client(args) as c:
        jobs = c.list_jobs(status=args.status or None, limit=args.limit or None)
    emit(args.output_format, jobs, lambda: table(jobs, JOB_COLUMNS, "(no jobs)"))
    return 0


def job_text(job: Json, url: str) -> str:
    spec = job.get("spec") or {}
    search = spec.get("search") or {}
    objectives = ", ".join(
        _objective(o) for o in search.get("objectives") or [] if isinstance(o, dict)
    )
    dataset = spec.get("dataset") or {}
    rows: list[tuple[str, Any]] = [
        ("id", job.get("id")),
        ("name", job.get("name")),
        (
            "status",
            f"{job.get('status')}" + (" (cancel requested)" if job.get("cancel_requested") else ""),
        ),
        ("stage", job.get("stage")),
        ("progress", _progress_text(job.get("progress"))),
        ("attempt", job.get("attempt")),
        ("space", job.get("space_id")),
        ("dataset", dataset.get("name") or dataset.get("id")),
        ("search", f"{search.get('algorithm', '-')}, budget {search.get('budget', '-')}"),
        ("objectives", objectives or None),
        ("devices", ", ".join(map(str, spec.get("devices") or [])) or None),
        ("supernet from", job.get("supernet_from")),
        ("created", short_time(job.get("created_at"))),
        ("started", short_time(job.get("started_at"))),
        ("finished", short_time(job.get("finished_at"))),
        ("elapsed", f"{job['elapsed_s']:.0f}s" if job.get("elapsed_s") is not None else None),
        ("front version", job.get("pareto_version")),
        ("error", job.get("error")),
        ("dashboard", dashboard_url(url, str(job.get("id")))),
    ]
    width = max(len(k) for k, _ in rows) + 1
    lines = [f"{(k + ':').ljust(width)} {cell(v)}" for k, v in rows]
    why = outcome_text(job.get("outcome"))
    if why:
        lines += ["", why]
    return "\n".join(lines)


def _objective(o: Json) -> str:
    text = " ".join(str(o[k]) for k in ("name", "direction") if o.get(k))
    return text + (f" (bound {o['bound']})" if o.get("bound") is not None else "")


def _progress_text(progress: Any) -> str | None:
    if not isinstance(progress, dict) or not progress:
        return None
    return " ".join(f"{k}={cell(v)}" for k, v in progress.items() if not isinstance(v, dict | list))


def cmd_jobs_show(args: argparse.Namespace) -> int:
    with client(args) as c:
        job = c.get_job(args.job)
    emit(args.output_format, job, lambda: job_text(job, args.url))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with client(args) as c:
        job = c.cancel_job(args.job)
    emit(args.output_format, job, lambda: job_line(job))
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    with client(args) as c:
        job = c.retry_job(args.job)
    emit(args.output_format, job, lambda: job_line(job))
    return 0


def cmd_jobs_delete(args: argparse.Namespace) -> int:
    with client(args) as c:
        c.delete_job(args.job, wait=args.timeout)
    emit(args.output_format, {"id": args.job, "deleted": True}, lambda: "")
    note(f"deleted job {args.job}")
    return 0


CANDIDATE_COLUMNS = [
    col("id"),
    col("device"),
    Column("ACCURACY(VAL)", lambda c: c.get("accuracy")),
    Column("ACCURACY(TEST)", lambda c: c.get("test_accuracy")),
    col("latency_ms"),
    col("flops"),
    col("params"),
    Column("PRED_ACC", lambda c: c.get("predicted_accuracy")),
    Column("PRED_MS", lambda c: c.get("predicted_latency_ms")),
    col("source"),
    col("feasible"),
    Column("PARETO", lambda c: c.get("is_pareto")),
    Column("ARCH", lambda c: str(c.get("arch_short", ""))[:48]),
]


def cmd_candidates(args: argparse.Namespace) -> int:
    with client(args) as c:
        rows = c.candidates(
            args.job,
            sort=args.sort,
            order="desc" if args.desc else args.order,
            source=args.source,
            feasible=args.feasible,
            pareto=args.pareto,
            device=args.device,
            limit=args.limit or None,
        )
    emit(args.output_format, rows, lambda: table(rows, CANDIDATE_COLUMNS, "(no candidates)"))
    return 0


EVENT_COLUMNS = [
    col("id"),
    Column("TIME", lambda e: short_time(e.get("ts"))),
    col("kind"),
    Column(
        "STATUS",
        lambda e: (
            f"{e.get('from_status') or '-'} -> {e['to_status']}" if e.get("to_status") else None
        ),
    ),
    col("message"),
]


def cmd_events(args: argparse.Namespace) -> int:
    with client(args) as c:
        rows = c.events(args.job, limit=args.limit or None)
    emit(args.output_format, rows, lambda: table(rows, EVENT_COLUMNS, "(no events)"))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    with client(args) as c:
        if args.follow:
            for line in c.follow_logs(args.job, interval=args.interval):
                print(line, flush=True)
            return 0
        lines = c.logs(args.job)
    emit(args.output_format, lines, lambda: "\n".join(lines))
    return 0


def cmd_pareto(args: argparse.Namespace) -> int:
    with client(args) as c:
        front, _ = c.pareto(args.job)
        front = front or {}
        if args.output_format != "table":
            emit(args.output_format, front, lambda: "")
        else:
            emit("table", front, lambda: front_table(front, c.get_job(args.job)))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    with client(args) as c:
        dest = Path(args.output) if args.output else None
        try:
            path = c.download_subnet(args.candidate, args.format, dest, timeout=args.timeout)
        except OSError as e:
            raise CliError(f"cannot write {e.filename or dest}: {e.strerror or e}") from None
        except TimeoutError as e:
            raise CliError(str(e), "the export may still finish: run the command again") from None
    emit(args.output_format, {"path": str(path)}, lambda: str(path))
    return 0


# -- catalog, datasets, devices -------------------------------------------------------------


def cmd_spaces(args: argparse.Namespace) -> int:
    with client(args) as c:
        spaces = c.search_spaces()
    columns = [col("id"), col("modality"), col("size"), col("description")]
    emit(args.output_format, spaces, lambda: table(spaces, columns, "(no spaces)"))
    return 0


DATASET_COLUMNS = [
    col("id"),
    col("name"),
    col("format"),
    Column(
        "SAMPLES", lambda d: (d.get("info") or {}).get("n") or (d.get("info") or {}).get("samples")
    ),
    Column("CREATED", lambda d: short_time(d.get("created_at"))),
]


def cmd_datasets_list(args: argparse.Namespace) -> int:
    with client(args) as c:
        rows = c.list_datasets()
    emit(args.output_format, rows, lambda: table(rows, DATASET_COLUMNS, "(no datasets)"))
    return 0


def cmd_datasets_upload(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"cannot read {path}: no such file")
    with client(args) as c:
        try:
            row = c.upload_dataset(path, name=args.name, fmt=args.format)
        except OSError as e:
            raise CliError(f"cannot read {path}: {e.strerror or e}") from None
    emit(args.output_format, row, lambda: str(row["id"]))
    name, fmt = row.get("name"), row.get("format")
    note(f"uploaded dataset '{name}' ({fmt}); a job uses it as dataset: {{id: {row['id']}}}")
    return 0


def cmd_datasets_delete(args: argparse.Namespace) -> int:
    with client(args) as c:
        c.delete_dataset(args.dataset)
    emit(args.output_format, {"id": args.dataset, "deleted": True}, lambda: "")
    note(f"deleted dataset {args.dataset}")
    return 0


DEVICE_COLUMNS = [
    col("name"),
    Column("TORCH", lambda d: f"{d.get('torch_device')} x{d.get('threads')}"),
    col("batch", "batch_size"),
    Column("RUNS", lambda d: f"{d.get('warmup')}+{d.get('repeats')}"),
    col("clock"),
    col("runtime"),
    col("paired"),
    col("ray_resource"),
    col("description"),
]


def cmd_devices_list(args: argparse.Namespace) -> int:
    with client(args) as c:
        rows = c.devices()
    emit(args.output_format, rows, lambda: table(rows, DEVICE_COLUMNS, "(no devices)"))
    return 0
