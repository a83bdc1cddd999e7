"""Administration: ``python -m nas_service.admin create-key --name NAME`` (prints the key once),
``list-keys``, ``revoke-key --name NAME``, ``migrate`` (alembic upgrade head, and create
Optuna's own storage database if it is missing).

The functions behind the commands live in ``nas_service.services.keys`` so other entry points
(the ``nas`` CLI) can call them.
"""

from __future__ import annotations

import argparse
import sys

from nas_service.db import Database, migrate
from nas_service.domain import DomainError
from nas_service.services import keys
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
    return p


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
