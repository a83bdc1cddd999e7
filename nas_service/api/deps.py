"""Request-scoped dependencies: the app's settings and store, and the caller's key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from nas_service.api.cache import ApiCache
from nas_service.db import Database
from nas_service.db.keys import hash_key
from nas_service.services.keys import authenticate, bearer_token
from nas_service.settings import Settings

bearer = HTTPBearer(auto_error=False, description="an API key: Authorization: Bearer <key>")


@dataclass(frozen=True)
class Ctx:
    settings: Settings
    db: Database
    cache: ApiCache


@dataclass(frozen=True)
class Caller:
    owner_id: int
    name: str


def get_ctx(request: Request) -> Ctx:
    state = request.app.state
    return Ctx(state.settings, state.db, state.cache)


async def get_caller(
    ctx: Annotated[Ctx, Depends(get_ctx)],
    creds: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    request: Request,
) -> Caller:
    header = request.headers.get("authorization")
    if creds is not None:
        header = f"Bearer {creds.credentials}"
    # A known key is answered from memory for a few seconds (revocation takes effect within
    # auth_cache_s); unknown keys always go to the store, so nothing an attacker sends is kept.
    digest = hash_key(bearer_token(header))
    hit = ctx.cache.keys.get(digest)
    if hit is not None:
        return Caller(*hit)
    key = await run_in_threadpool(_lookup, ctx.db, header)
    ctx.cache.keys.put(digest, (key.owner_id, key.name))
    return key


def _lookup(db: Database, header: str | None) -> Caller:
    with db.transaction() as s:
        key = authenticate(s, header)
        return Caller(key.id, key.name)


CtxDep = Annotated[Ctx, Depends(get_ctx)]
CallerDep = Annotated[Caller, Depends(get_caller)]
