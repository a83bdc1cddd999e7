"""``python -m nas_service.api``: serve the API with uvicorn (settings from NAS_* variables)."""

from __future__ import annotations

import argparse

import uvicorn

from nas_service.api.app import KEEP_ALIVE_S, create_app
from nas_service.settings import Settings


def main(argv: list[str] | None = None) -> None:
    settings = Settings()
    p = argparse.ArgumentParser(prog="python -m nas_service.api", description=__doc__)
    p.add_argument("--host", default=settings.api_host)
    p.add_argument("--port", type=int, default=settings.api_port)
    args = p.parse_args(argv)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level="info",
        timeout_keep_alive=KEEP_ALIVE_S,
    )


if __name__ == "__main__":
    main()
