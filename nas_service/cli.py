"""The ``nas`` command line.

Everything but ``serve``, ``keys`` and ``devices add|remove`` talks to the REST API through
:class:`nas_service.client.NasClient`; the server URL and key come from ``--url`` / ``--key`` or
``NAS_URL`` / ``NAS_API_KEY``. ``keys`` and ``devices add|remove`` write the server's store
directly (``nas_service.cli_admin``), found from ``NAS_DATABASE_URL`` or the data directory.

Conventions (as ``gh`` and ``kubectl``): global options (``--url``, ``--key``, ``--json``,
``-o table|json|yaml``) go anywhere on the line; data goes to stdout, remarks to stderr; an
error is one line, ``error: ...``, with a ``hint: ...`` line when there is something to try.
Exit codes: 0 done, 1 the API refused or the server could not be reached (or a file could not be
read), 2 the command line is wrong, 3 a watched job ended without a feasible subnet, 130
interrupted, 141 the reader of stdout went away (``nas jobs --json | head``).
"""

from __future__ import annotations

import argparse
import os
import sys
from argparse import SUPPRESS
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from nas_service import cli_admin, cli_jobs
from nas_service.cli_jobs import dashboard_url, load_job_file, watch
from nas_service.cli_output import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_NO_FEASIBLE,
    FORMATS,
    CliError,
    UsageError,
)
from nas_service.client import DEFAULT_URL, ApiError, ConnectionFailed
from nas_service.settings import Settings

__all__ = [
    "NO_FEASIBLE_EXIT",
    "build_parser",
    "create_api_key",
    "dashboard_url",
    "load_job_file",
    "main",
    "watch",
]

NO_FEASIBLE_EXIT = EXIT_NO_FEASIBLE  # the name the quick start and older scripts use

ENVIRONMENT = f"""environment:
  NAS_URL        server URL for the API commands (default {DEFAULT_URL}); --url overrides
  NAS_API_KEY    API key for the API commands; --key overrides
  NAS_DATA_DIR   the data directory of `nas serve` and of the store commands (keys, devices
                 add|remove): the SQLite store, uploads, runs, exports; default
                 $XDG_DATA_HOME/nas, else ~/.local/share/nas (never the current directory)
  NAS_DATABASE_URL  the store, when not the SQLite file in NAS_DATA_DIR (e.g. PostgreSQL)

exit codes:
  0 done, 1 the API refused or the server could not be reached, 2 usage error,
  3 a watched job ended without a feasible subnet, 130 interrupted, 141 broken pipe

Run 'nas COMMAND --help' for a command's options."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nas-service")
    except PackageNotFoundError:
        return "unknown"


def create_api_key(name: str, settings: Settings | None = None) -> str:
    """Create a key directly in the configured store (the SQLite store is migrated first) and
    return it; a duplicate name is a :class:`CliError` (a ``SystemExit``)."""
    return cli_admin.create_key(name, settings)[1]


# -- parser ---------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (exit 2) that says where to look."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, f"see '{self.prog} --help'")


def _global_options(output: bool = True, file_output: bool = False) -> argparse.ArgumentParser:
    """The options every command takes, anywhere on the line. Defaults live on the top-level
    parser only (SUPPRESS here), so a later position never resets an earlier one."""
    p = Parser(add_help=False)
    g = p.add_argument_group("global options")
    g.add_argument("--url", default=SUPPRESS, help=f"server URL (env NAS_URL; {DEFAULT_URL})")
    g.add_argument("--key", default=SUPPRESS, help="API key (env NAS_API_KEY)")
    if output:
        g.add_argument(
            "--json",
            dest="output_format",
            action="store_const",
            const="json",
            default=SUPPRESS,
            help="print JSON (same as -o json)",
        )
        if not file_output:  # `download -o` names the file to write
            g.add_argument(
                "-o",
                "--output",
                dest="output_format",
                choices=FORMATS,
                default=SUPPRESS,
                help="output format (default table)",
            )
    return p


Handler = Callable[[argparse.Namespace], int]


class _Builder:
    def __init__(self) -> None:
        self.common = _global_options()
        self.common_download = _global_options(file_output=True)
        self.bare = _global_options(output=False)

    def group(
        self, sub: Any, name: str, help: str, default: Handler | None = None, **kw: Any
    ) -> Any:
        """A command group (``nas jobs ...``); ``default`` runs when no action is given."""
        g = sub.add_parser(name, help=help, description=help, parents=[self.common], **kw)
        actions = g.add_subparsers(
            dest=f"{name}_action", metavar="ACTION", required=default is None, parser_class=Parser
        )
        if default is not None:
            g.set_defaults(func=default)
        return g, actions

    def leaf(
        self, sub: Any, name: str, func: Handler, help: str, *, parents: str = "common", **kw: Any
    ) -> argparse.ArgumentParser:
        parent = {"common": self.common, "download": self.common_download, "bare": self.bare}
        p = sub.add_parser(
            name, help=help, description=kw.pop("description", help), parents=[parent[parents]],
            **kw,
        )  # fmt: skip
        p.set_defaults(func=func)
        return p


def _job_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", metavar="JOB", help="job id")


def _interval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interval", type=float, default=1.0, help="seconds between polls")


def _job_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--status",
        action="append",
        default=SUPPRESS,
        help="queued, running, succeeded, failed or cancelled (repeat for several)",
    )
    p.add_argument("--limit", type=int, default=SUPPRESS, help="at most this many (0: all; 50)")


def _candidates_parser(p: argparse.ArgumentParser) -> None:
    from nas_service.db.queries import SORTABLE

    _job_arg(p)
    p.add_argument("--sort", choices=SORTABLE, default="id", help="column to sort by (default id)")
    p.add_argument("--order", choices=("asc", "desc"), default="asc")
    p.add_argument("--desc", action="store_true", help="same as --order desc")
    p.add_argument("--source", choices=("predicted", "measured"))
    p.add_argument("--device", help="candidates timed on this device only")
    p.add_argument(
        "--feasible",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="only those that meet (or, --no-feasible, miss) every bound",
    )
    p.add_argument(
        "--pareto",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="only those on (or, --no-pareto, off) the Pareto front",
    )
    p.add_argument("--limit", type=int, default=100, help="at most this many (0: all; 100)")


def build_parser() -> argparse.ArgumentParser:
    b = _Builder()
    p = Parser(
        prog="nas",
        description="Neural architecture search service: submit searches, follow them, read "
        "their Pareto fronts, download subnets; run the server; manage keys and devices.",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_global_options()],
    )
    p.add_argument("--version", action="version", version=f"nas {_version()}")
    p.set_defaults(
        url=os.environ.get("NAS_URL") or DEFAULT_URL,
        key=os.environ.get("NAS_API_KEY"),
        output_format="table",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    s = b.leaf(
        sub,
        "serve",
        cmd_serve,
        "run the API, the dashboard and the job dispatcher",
        parents="bare",
        description="Run the API, the dashboard and the job dispatcher. The store and files "
        "live in NAS_DATA_DIR (default $XDG_DATA_HOME/nas or ~/.local/share/nas), or the store "
        "in NAS_DATABASE_URL.",
    )
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

    s = b.leaf(
        sub, "submit", cli_jobs.cmd_submit, "submit a job file (YAML or JSON); prints its id"
    )
    s.add_argument("file", metavar="FILE")
    s.add_argument("--name", help="override the job name")
    s.add_argument("--supernet-from", metavar="JOB", help="reuse this job's trained supernet")
    s.add_argument(
        "--watch",
        action="store_true",
        help="follow the job until it ends (exit 0: a front; 1: failed or cancelled; "
        f"{EXIT_NO_FEASIBLE}: finished, but no subnet meets the bounds)",
    )
    _interval(s)

    def job_actions(actions: Any) -> None:
        s = b.leaf(
            actions,
            "watch",
            cli_jobs.cmd_watch,
            "follow a job: progress per stage and the current front (exit codes as submit)",
        )
        _job_arg(s)
        _interval(s)
        _job_arg(b.leaf(actions, "pareto", cli_jobs.cmd_pareto, "print a job's Pareto front"))
        _job_arg(b.leaf(actions, "cancel", cli_jobs.cmd_cancel, "cancel a job"))
        _job_arg(b.leaf(actions, "retry", cli_jobs.cmd_retry, "retry a failed or cancelled job"))

    job_actions(sub)

    s = b.leaf(
        sub,
        "download",
        cli_jobs.cmd_download,
        "download an exported subnet (waits for the export)",
        parents="download",
    )
    s.add_argument("candidate", metavar="CANDIDATE", help="candidate id (nas jobs candidates JOB)")
    s.add_argument("--format", choices=_export_formats(), default="weights")
    s.add_argument("-o", "--output", help="file or directory to write to")
    s.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the export")

    b.leaf(sub, "spaces", cli_jobs.cmd_spaces, "list the search spaces")

    # jobs
    g, actions = b.group(
        sub, "jobs", "list and inspect jobs (default: list)", cli_jobs.cmd_jobs_list
    )
    _job_filters(g)
    g.set_defaults(status=[], limit=50)
    _job_filters(b.leaf(actions, "list", cli_jobs.cmd_jobs_list, "list your jobs, newest first"))
    _job_arg(b.leaf(actions, "show", cli_jobs.cmd_jobs_show, "a job's details"))
    _candidates_parser(
        b.leaf(
            actions,
            "candidates",
            cli_jobs.cmd_candidates,
            "a job's candidates, filtered and sorted",
        )
    )
    s = b.leaf(
        actions, "events", cli_jobs.cmd_events, "a job's events (state changes), oldest first"
    )
    _job_arg(s)
    s.add_argument("--limit", type=int, default=0, help="at most this many (0: all)")
    s = b.leaf(actions, "logs", cli_jobs.cmd_logs, "a job's log")
    _job_arg(s)
    s.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    _interval(s)
    s = b.leaf(
        actions, "delete", cli_jobs.cmd_jobs_delete, "cancel a job, then remove it and its files"
    )
    _job_arg(s)
    s.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for a running job to stop before it is removed (default 60)",
    )
    job_actions(actions)

    # datasets
    _, actions = b.group(
        sub,
        "datasets",
        "upload, list and delete datasets (default: list)",
        cli_jobs.cmd_datasets_list,
    )
    b.leaf(actions, "list", cli_jobs.cmd_datasets_list, "list your uploaded datasets")
    s = b.leaf(
        actions,
        "upload",
        cli_jobs.cmd_datasets_upload,
        "upload an .npz (arrays x, y) or a .zip of one folder per class; prints its id",
    )
    s.add_argument("file", metavar="FILE")
    s.add_argument("--name", help="dataset name (default: the file name without its suffix)")
    s.add_argument("--format", help="upload format (default: from the file's suffix)")
    s = b.leaf(actions, "delete", cli_jobs.cmd_datasets_delete, "delete a dataset no job uses")
    s.add_argument("dataset", metavar="DATASET", help="dataset id")

    # devices
    _, actions = b.group(
        sub,
        "devices",
        "latency targets: list (API), add and remove (the store, like keys) (default: list)",
        cli_jobs.cmd_devices_list,
    )
    b.leaf(actions, "list", cli_jobs.cmd_devices_list, "list the devices jobs may target")
    s = b.leaf(
        actions,
        "add",
        cli_admin.cmd_devices_add,
        "register a device, or replace all settings of the one with that name (store)",
        epilog=cli_admin.DEVICE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("name", metavar="NAME")
    cli_admin.add_device_options(s)
    s = b.leaf(
        actions, "remove", cli_admin.cmd_devices_remove, "remove a device no active job targets"
    )
    _name_arg(s)

    # keys
    _, actions = b.group(
        sub,
        "keys",
        "manage API keys (writes the server's store directly: NAS_DATA_DIR or NAS_DATABASE_URL)",
    )
    s = b.leaf(
        actions, "create", cli_admin.cmd_keys_create, "create a key and print it (shown once)"
    )
    _name_arg(s)
    b.leaf(actions, "list", cli_admin.cmd_keys_list, "list keys (names and prefixes, never keys)")
    _name_arg(b.leaf(actions, "revoke", cli_admin.cmd_keys_revoke, "revoke a key by name"))
    return p


def _name_arg(p: argparse.ArgumentParser) -> None:
    """NAME as a positional or as --name (the older spelling)."""
    p.add_argument("name_pos", nargs="?", metavar="NAME", default=None)
    p.add_argument("--name", default=None, help=SUPPRESS)
    p.set_defaults(_needs_name=True)


def _export_formats() -> list[str]:
    from nas_service.catalog import exports

    return exports.names()


def cmd_serve(args: argparse.Namespace) -> int:
    from nas_service.cli_serve import serve

    settings = Settings()
    return serve(
        settings,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        dispatcher=not args.no_dispatcher,
        migrate=settings.is_sqlite if args.migrate is None else args.migrate,
        access_log=not args.no_access_log,
    )


# -- running a command ----------------------------------------------------------------------


def _resolve(args: argparse.Namespace) -> None:
    if getattr(args, "_needs_name", False):
        if args.name_pos and args.name and args.name_pos != args.name:
            raise UsageError(f"two names given: {args.name_pos!r} and {args.name!r}")
        args.name = args.name_pos or args.name
        if not args.name:
            raise UsageError("a NAME is needed", f"see 'nas {args.command} --help'")
    for attr in ("limit",):
        value = getattr(args, attr, None)
        if isinstance(value, int) and value < 0:
            raise UsageError(f"--{attr} must be 0 or more, not {value}")


def api_hint(e: ApiError, url: str) -> str | None:
    if not e.is_problem:
        return f"is {url} a NAS server? check --url / NAS_URL"
    if e.status == 401:
        return "check --key / NAS_API_KEY; create a key on the server host: nas keys create NAME"
    if e.status == 429:
        return "wait for one of your jobs to end, or cancel one (nas jobs --status running)"
    if e.status >= 500 and e.status != 503:
        return "the server's log has the details"
    return None


CONNECTION_HINTS = {
    "refused": "is the server running (nas serve)? check the host and port in --url / NAS_URL",
    "unknown_host": "check the host name in --url / NAS_URL",
    "timeout": "the server may be overloaded, or --url / NAS_URL names the wrong host",
    "protocol": "is that the address of a NAS server? check --url / NAS_URL",
}


def _report(error: CliError) -> int:
    for line in error.lines():
        print(line, file=sys.stderr)
    return error.exit_code


def _silence_stdout() -> None:
    """The reader went away: point stdout at /dev/null so the exit flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    url = DEFAULT_URL
    try:
        args = build_parser().parse_args(argv)
        url = args.url
        _resolve(args)
        code = int(args.func(args))
        sys.stdout.flush()
        return code
    except CliError as e:
        return _report(e)
    except ApiError as e:
        return _report(CliError(str(e), api_hint(e, url)))
    except ConnectionFailed as e:
        return _report(CliError(str(e), CONNECTION_HINTS.get(e.reason, "check --url / NAS_URL")))
    except TimeoutError as e:
        return _report(CliError(str(e) or "timed out"))
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
