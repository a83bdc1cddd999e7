"""What the CLI prints: a value as a table, JSON or YAML (``--json``, ``-o FORMAT``), and the
error every command reports on one line (:class:`CliError`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

FORMATS = ("table", "json", "yaml")

# Exit codes: the same for every command.
EXIT_OK = 0
EXIT_ERROR = 1  # the API refused, the server could not be reached, a file could not be read
EXIT_USAGE = 2  # the command line is wrong (argparse, a missing key, a URL without a scheme)
EXIT_NO_FEASIBLE = 3  # `submit --watch` / `watch`: the job ended, no subnet meets the bounds
EXIT_BROKEN_PIPE = 141  # the reader of our output went away (128 + SIGPIPE), as `yes | head`
EXIT_INTERRUPTED = 130


class CliError(SystemExit):
    """A failure the CLI reports as ``error: <message>``, then ``hint: <hint>`` if there is one,
    and exits with ``code``. A ``SystemExit``, so library callers (the quick start) that do not
    catch it still exit with the message."""

    def __init__(self, message: str, hint: str | None = None, code: int = EXIT_ERROR):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = code

    def lines(self) -> list[str]:
        return [f"error: {self.message}", *([f"hint: {self.hint}"] if self.hint else [])]


class UsageError(CliError):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, hint, EXIT_USAGE)


@dataclass(frozen=True)
class Column:
    title: str
    get: Callable[[dict[str, Any]], Any]


def col(title: str, key: str | None = None) -> Column:
    name = key or title
    return Column(title.upper(), lambda row: row.get(name))


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def short_time(value: Any) -> str:
    """An ISO timestamp from the API as ``YYYY-MM-DD HH:MM:SS`` (UTC as sent)."""
    if not isinstance(value, str) or not value:
        return cell(value)
    return value.replace("T", " ")[:19]


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], empty: str = "") -> str:
    if not rows:
        return empty
    body = [[cell(c.get(r)) for c in columns] for r in rows]
    head = [c.title for c in columns]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
             for line in [head, *body]]  # fmt: skip
    return "\n".join(lines)


def plain(value: Any) -> Any:
    """``value`` with datetimes as ISO strings, so JSON and YAML print the same data."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def emit(fmt: str, data: Any, text: Callable[[], str]) -> None:
    """Print ``data`` as ``fmt``: JSON, YAML, or ``text()`` (the table)."""
    if fmt == "json":
        out = json.dumps(plain(data), indent=2, ensure_ascii=False)
    elif fmt == "yaml":
        import yaml

        out = yaml.safe_dump(plain(data), sort_keys=False, allow_unicode=True).rstrip("\n")
    else:
        out = text()
    if out:
        write(out + "\n")


def write(text: str, chunk: int = 1 << 16) -> None:
    """``text`` to stdout in pipe-sized pieces, flushed: a reader that goes away (``| head``)
    is noticed as a BrokenPipeError here, which ``nas`` turns into a quiet exit 141 (one
    large write may instead be cut short without a word)."""
    for i in range(0, len(text), chunk):
        sys.stdout.write(text[i : i + chunk])
        sys.stdout.flush()


def note(message: str) -> None:
    """A remark for the person at the terminal (stderr, so stdout stays the data)."""
    print(message, file=sys.stderr)
