"""The FastAPI application factory."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from nas_service.api import metrics, problems
from nas_service.api.cache import ApiCache
from nas_service.api.routes_catalog import public
from nas_service.api.routes_catalog import router as catalog_router
from nas_service.api.routes_jobs import router as jobs_router
from nas_service.api.routes_results import router as results_router
from nas_service.db import Database
from nas_service.settings import Settings

API_PREFIX = "/api/v1"
# Dashboards poll every second over kept-alive connections. With uvicorn's 5 s default, a
# connection idle that long is closed just as a client reuses it and the request fails; idle
# timeouts this long (as browsers and proxies use) make that race rare.
KEEP_ALIVE_S = 75
log = logging.getLogger(__name__)


def create_app(settings: Settings, db: Database | None = None) -> FastAPI:
    """Build the app. Connects lazily (the engine opens connections on first use); pass ``db``
    to share an existing store (tests). ``/`` is left free for the dashboard.

    ``/docs`` (Swagger UI) and ``/redoc`` load their scripts and styles from this server
    (``/static-offline-docs``, shipped by the ``fastapi-offline`` package): they work with no
    network, and nothing is fetched from elsewhere (Swagger's online validator is off)."""
    app = FastAPIOffline(
        swagger_ui_parameters={"validatorUrl": None},
        title="NAS service",
        version="1.0",
        description=(
            "Neural architecture search as a service: submit a job, watch it train and search, "
            "read the Pareto front, download subnets. Errors are RFC 9457 problem+json with a "
            "stable `code`. Authenticate with `Authorization: Bearer <key>`."
        ),
    )
    app.state.settings = settings
    app.state.db = db or Database(settings.database_url)
    app.state.cache = ApiCache(settings.auth_cache_s, settings.poll_cache_s)
    problems.install(app)
    metrics.install(app, app.state.db)
    app.include_router(public, prefix=API_PREFIX)
    app.include_router(jobs_router, prefix=API_PREFIX)
    app.include_router(results_router, prefix=API_PREFIX)
    app.include_router(catalog_router, prefix=API_PREFIX)
    # Also at the root, where probes usually look.
    app.include_router(public)
    app.include_router(metrics.router)
    _mount_dashboard(app)
    return app


def _mount_dashboard(app: FastAPI) -> None:
    from nas_service.dashboard import mount_dashboard

    mount_dashboard(app)
