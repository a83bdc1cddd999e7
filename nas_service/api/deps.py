"""Request-scoped dependencies: the app's settings and store, and the caller's key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from nas_service.db import Database
from nas_service.services.keys import authenticate
from nas_service.settings import Settings

bearer = HTTPBearer(auto_error=False, description="an API key: Authorization: Bearer <key>")


@dataclass(frozen=True)
class Ctx:
    settings: Settings
    db: Database


@dataclass(frozen=True)
class Caller:
    owner_id: int
    name: str


def get_ctx(request: Request) -> Ctx:
    return Ctx(request.app.state.settings, request.app.state.db)


def get_caller(
    ctx: Annotated[Ctx, Depends(get_ctx)],
    creds: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    request: Request,
) -> Caller:
    header = request.headers.get("authorization")
    if creds is not None:
        header = f"Bearer {creds.credentials}"
    with ctx.db.transaction() as s:
        key = authenticate(s, header)
        return Caller(key.id, key.name)


CtxDep = Annotated[Ctx, Depends(get_ctx)]
CallerDep = Annotated[Caller, Depends(get_caller)]
