"""The commands that talk to the service's store directly, not through the API: API keys
(``nas keys create | list | revoke``) and device registration (``nas devices add | remove``).

The store is the one the server uses: ``NAS_DATABASE_URL``, or by default the SQLite file in the
data directory (``NAS_DATA_DIR``, default ``$XDG_DATA_HOME/nas`` or ``~/.local/share/nas``;
never the current directory). The embedded SQLite store is migrated on first use.
"""

from __future__ import annotations

import argparse
from argparse import SUPPRESS
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nas_service.cli_output import CliError, col, emit, note, table
from nas_service.settings import Settings

# One option per device setting (the name is the positional argument).
DEVICE_OPTIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("--torch-device", "cpu, cuda or cuda:N", {}),
    ("--threads", "intra-op threads", {"type": int}),
    ("--batch-size", "inputs per timed run", {"type": int}),
    ("--warmup", "untimed runs first", {"type": int}),
    ("--repeats", "timed runs", {"type": int}),
    ("--clock", "wall or cpu", {}),
    ("--runtime", "eager or torchscript", {}),
    ("--paired", "speed-normalise every run against a reference network", {"action": "store_true"}),
    ("--ray-resource", "measure only on nodes with this Ray resource", {}),
    ("--description", "free text", {}),
]
DEVICE_EXAMPLES = """examples:
  add pixel7 --ray-resource device:pixel7 --threads 4 --runtime torchscript
  add shared-cpu --clock cpu --runtime torchscript --paired --warmup 3 --repeats 8
"""


def add_device_options(parser: argparse.ArgumentParser) -> None:
    """The device settings as options; one left out takes DeviceSpec's default (shown)."""
    from nas_service.domain.device import DeviceSpec

    for flag, help, kw in DEVICE_OPTIONS:
        default = DeviceSpec.model_fields[flag.strip("-").replace("-", "_")].default
        parser.add_argument(flag, default=SUPPRESS, help=f"{help} (default {default})", **kw)


def device_values(args: argparse.Namespace) -> dict[str, Any]:
    fields = [flag.strip("-").replace("-", "_") for flag, _, _ in DEVICE_OPTIONS]
    return {k: getattr(args, k) for k in fields if hasattr(args, k)}


def store_name(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


@contextmanager
def open_store(settings: Settings) -> Iterator[Any]:
    """The store as a ``Database``; the embedded SQLite store is created and migrated first.
    A store that cannot be reached is a one-line :class:`CliError`."""
    from sqlalchemy.exc import SQLAlchemyError

    from nas_service.db import Database, migrate
    from nas_service.domain import DomainError

    try:
        db = Database(settings.database_url)
    except (SQLAlchemyError, ValueError) as e:
        raise CliError(f"cannot open the store {store_name(settings)}: {_first_line(e)}") from None
    try:
        if settings.is_sqlite:
            migrate.upgrade(db.engine)
        yield db
    except DomainError as e:
        raise CliError(e.detail) from None
    except SQLAlchemyError as e:
        raise CliError(
            f"cannot use the store {store_name(settings)}: {_first_line(e)}",
            "set NAS_DATABASE_URL (or NAS_DATA_DIR for the embedded store) to the server's",
        ) from None
    finally:
        db.dispose()


def _first_line(e: BaseException) -> str:
    orig = getattr(e, "orig", None) or e
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


# -- keys -----------------------------------------------------------------------------------


def create_key(name: str, settings: Settings | None = None) -> tuple[Any, str]:
    """(KeyInfo, plaintext key) created in the configured store; shown once, stored hashed."""
    from nas_service.services import keys

    settings = settings or Settings()
    with open_store(settings) as db:
        return keys.create_key(db, name)


def cmd_keys_create(args: argparse.Namespace) -> int:
    settings = Settings()
    info, key = create_key(args.name, settings)
    emit(
        args.output_format,
        {"name": info.name, "prefix": info.prefix, "key": key},
        lambda: key,
    )
    note(f"created key '{info.name}' in {store_name(settings)}; it is shown only once")
    if args.output_format == "table":
        note(f"export NAS_API_KEY={key}")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from nas_service.services import keys

    with open_store(Settings()) as db:
        rows = [
            {
                "name": k.name,
                "prefix": k.prefix,
                "created_at": k.created_at,
                "revoked_at": k.revoked_at,
                "active": k.revoked_at is None,
            }
            for k in keys.list_keys(db)
        ]
    columns = [
        col("name"),
        col("prefix"),
        col("created", "created_at"),
        col("revoked", "revoked_at"),
    ]
    emit(args.output_format, rows, lambda: table(rows, columns, "(no keys)"))
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from nas_service.services import keys

    with open_store(Settings()) as db:
        keys.revoke_key(db, args.name)
    emit(args.output_format, {"name": args.name, "revoked": True}, lambda: "")
    note(f"revoked key '{args.name}'")
    return 0


# -- devices (registration) -----------------------------------------------------------------


def cmd_devices_add(args: argparse.Namespace) -> int:
    from nas_service.services import devices

    with open_store(Settings()) as db:
        dev = devices.register_device(db, name=args.name, **device_values(args))
    emit(args.output_format, dev.model_dump(), lambda: "")
    note(f"device '{dev.name}' registered")
    return 0


def cmd_devices_remove(args: argparse.Namespace) -> int:
    from nas_service.services import devices

    with open_store(Settings()) as db:
        devices.remove_device(db, args.name)
    emit(args.output_format, {"name": args.name, "removed": True}, lambda: "")
    note(f"removed device '{args.name}'")
    return 0
