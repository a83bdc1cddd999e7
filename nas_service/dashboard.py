"""The dashboard: static HTML, CSS and JS modules shipped in ``nas_service/static``.

``mount_dashboard(app)`` serves ``index.html`` at ``/`` and the assets under ``/static``. No
build step: the browser loads the ES modules as they are.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"


def mount_dashboard(app: FastAPI) -> None:
    index = STATIC_DIR / "index.html"

    async def dashboard_index() -> FileResponse:
        # no-cache: the page is tiny and must pick up a new release without a hard reload.
        return FileResponse(index, media_type="text/html", headers={"Cache-Control": "no-cache"})

    app.add_api_route("/", dashboard_index, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
