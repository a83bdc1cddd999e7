"""The app's routes as (full path template, methods) with their matchers, built once per app:
for ``Allow`` on a 405 and for the route label of the request metrics.

Read through ``fastapi.routing.iter_route_contexts``, which yields every route of the app with
its full path (router prefixes included), however the routers were included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.routing import Mount, compile_path


@dataclass(frozen=True)
class RouteInfo:
    template: str
    methods: frozenset[str] | None  # None: a mount (any method, handled below it)
    regex: re.Pattern[str]


class RouteTable:
    def __init__(self, app: Any):
        self._app = app
        self._routes: list[RouteInfo] | None = None

    @property
    def routes(self) -> list[RouteInfo]:
        if self._routes is None:  # after startup the routes no longer change
            out = []
            for ctx in iter_route_contexts(self._app.routes):
                path = ctx.path
                if not isinstance(path, str):
                    continue
                if isinstance(ctx.original_route, Mount):
                    prefix = path.rstrip("/")
                    regex = re.compile("^" + re.escape(prefix) + "(/.*)?$")
                    out.append(RouteInfo(prefix + "/{path}", None, regex))
                else:
                    methods = frozenset(ctx.methods or ())
                    out.append(RouteInfo(path, methods, compile_path(path)[0]))
            self._routes = out
        return self._routes

    def allowed(self, path: str) -> list[str]:
        """Every method some route answers at ``path``."""
        found: set[str] = set()
        for r in self.routes:
            if r.methods and r.regex.match(path):
                found |= r.methods
        return sorted(found)

    def template(self, method: str, path: str) -> str:
        """The template of the route that serves (method, path), or of one at that path (a
        405), or ``unmatched``."""
        partial = None
        for r in self.routes:
            if r.regex.match(path):
                if r.methods is None or method in r.methods:
                    return r.template
                partial = partial or r.template
        return partial or "unmatched"
