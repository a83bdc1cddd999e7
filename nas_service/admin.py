"""Administration: ``python -m nas_service.admin create-key --name NAME`` (prints the key once),
``list-keys``, ``revoke-key --name NAME``, ``migrate`` (alembic upgrade head, and create
Optuna's own storage database if it is missing), ``add-device NAME [settings]`` (register a
latency target, or replace all settings of the one with that name), ``list-devices``,
``remove-device --name NAME``.

The ``nas`` CLI has the same commands (``nas keys create | list | revoke``, ``nas devices add |
list | remove``); this module stays for scripts and the deployment's one-shot ``migrate``. Both
find the store the same way: ``NAS_DATABASE_URL``, else the SQLite file in ``NAS_DATA_DIR``
(default ``$XDG_DATA_HOME/nas`` or ``~/.local/share/nas``, never the current directory). The
functions behind the commands live in ``nas_service.services.keys`` and ``.devices``.
"""

from __future__ import annotations

import argparse
import sys

from nas_service.cli_admin import add_device_options, device_values
from nas_service.db import Database, migrate
from nas_service.domain import DomainError
from nas_service.services import devices, keys
from nas_service.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nas_service.admin", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create-key", help="create an API key and print it once")
    c.add_argument("--name", required=True)
    sub.add_parser("list-keys", help="list keys (names and prefixes, never the keys)")
    r = sub.add_parser("revoke-key", help="revoke a key by name")
    r.add_argument("--name", required=True)
    sub.add_parser("migrate", help="upgrade the database schema to the latest revision")
    d = sub.add_parser(
        "add-device",
        help="register a latency target, or replace all settings of the one with that name",
        description=DEVICE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("name")

    add_device_options(d)
    sub.add_parser("list-devices", help="list the registered devices and their settings")
    rd = sub.add_parser("remove-device", help="remove a device no active job targets")
    rd.add_argument("--name", required=True)
    return p


DEVICE_HELP = """Register a latency target. Examples:

  add-device pixel7 --ray-resource device:pixel7 --threads 4 --runtime torchscript
  add-device shared-cpu --clock cpu --runtime torchscript --paired --warmup 3 --repeats 8
"""


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings or Settings()
    db = Database(settings.database_url)
    try:
        if args.command == "migrate" or settings.is_sqlite:
            # The embedded SQLite store is created on first use; PostgreSQL is migrated by
            # the deployment (docker compose runs a one-shot migrate service).
            migrate.upgrade(db.engine)
        if args.command == "create-key":
            info, key = keys.create_key(db, args.name)
            print(key)
            print(
                f"created key '{info.name}' ({info.prefix}...); it is shown only once",
                file=sys.stderr,
            )
        elif args.command == "list-keys":
            for k in keys.list_keys(db):
                state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
                print(f"{k.name}\t{k.prefix}...\t{k.created_at:%Y-%m-%d %H:%M}\t{state}")
        elif args.command == "revoke-key":
            keys.revoke_key(db, args.name)
            print(f"revoked key '{args.name}'", file=sys.stderr)
        elif args.command == "add-device":
            dev = devices.register_device(db, name=args.name, **device_values(args))
            print(f"device '{dev.name}' registered", file=sys.stderr)
        elif args.command == "list-devices":
            for dev in devices.list_devices(db):
                how = f"{dev.runtime}, {dev.clock} clock" + (", paired" if dev.paired else "")
                print(
                    f"{dev.name}\t{dev.torch_device} x{dev.threads} batch {dev.batch_size}\t"
                    f"{dev.warmup}+{dev.repeats} runs, {how}\t{dev.ray_resource or '-'}"
                )
        elif args.command == "remove-device":
            devices.remove_device(db, args.name)
            print(f"removed device '{args.name}'", file=sys.stderr)
        elif args.command == "migrate":
            if migrate.ensure_database(settings.optuna_storage):
                print("created the Optuna storage database", file=sys.stderr)
            print(f"database at revision {migrate.current_revision(db.engine)}", file=sys.stderr)
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
