"""The per-process poll caches: stale at most for their TTL, per owner, dropped by cancel."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nas_service.api.cache import TTLCache
from nas_service.db import Database
from nas_service.db import jobs as repo
from nas_service.db.results import set_pareto
from tests.api.client import Api, client_for, make_settings
from tests.api.specs import spec


@pytest.fixture
def cached(db: Database, tmp_path: Path) -> Iterator[tuple[Api, Api]]:
    settings = make_settings(db.url, tmp_path / "data", poll_cache_s=0.5, auth_cache_s=30.0)
    with client_for(settings, db, "alice") as a, client_for(settings, db, "mallory") as m:
        yield a, m


def test_ttl_cache_expires_and_stays_bounded() -> None:
    c: TTLCache[int, str] = TTLCache(ttl_s=0.05, max_entries=4)
    c.put(1, "a")
    assert c.get(1) == "a"
    time.sleep(0.06)
    assert c.get(1) is None
    for i in range(10):
        c.put(i, str(i))
    assert len(c._data) <= 4 and c.get(9) == "9"
    off: TTLCache[int, str] = TTLCache(ttl_s=0)
    off.put(1, "a")
    assert off.get(1) is None


def test_job_poll_is_stale_only_within_ttl_and_cancel_drops_it(
    cached: tuple[Api, Api], db: Database
) -> None:
    api, _ = cached
    jid = uuid.UUID(api.post("/api/v1/jobs", json=spec()).json()["id"])
    assert api.get(f"/api/v1/jobs/{jid}").json()["status"] == "queued"
    with db.transaction() as s:
        assert repo.claim_next_job(s, "w") is not None
    # Within the TTL the rendered job may be reused...
    assert api.get(f"/api/v1/jobs/{jid}").json()["status"] == "queued"
    time.sleep(0.6)
    # ...and never after it.
    assert api.get(f"/api/v1/jobs/{jid}").json()["status"] == "running"
    # A cancel through this process is visible at once, not after the TTL.
    assert api.post(f"/api/v1/jobs/{jid}/cancel").status_code == 200
    assert api.get(f"/api/v1/jobs/{jid}").json()["cancel_requested"] is True


def test_pareto_cache_is_per_owner_and_refreshes(cached: tuple[Api, Api], db: Database) -> None:
    api, other = cached
    jid = uuid.UUID(api.post("/api/v1/jobs", json=spec()).json()["id"])
    url = f"/api/v1/jobs/{jid}/pareto"
    first = api.get(url)
    assert first.status_code == 200
    # Another key never gets the owner's cached front.
    assert other.get(url).status_code == 404
    assert other.get(f"/api/v1/jobs/{jid}").status_code == 404
    with db.transaction() as s:
        set_pareto(s, jid, [], hypervolume=0.5, evaluations=1)
    time.sleep(0.6)
    after = api.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert after.status_code == 200 and after.headers["etag"] != first.headers["etag"]
    assert after.json()["hypervolume_history"][0]["hypervolume"] == 0.5


def test_known_key_is_cached_unknown_key_is_not(cached: tuple[Api, Api]) -> None:
    api, _ = cached
    assert api.get("/api/v1/jobs").status_code == 200
    bad = api.get("/api/v1/jobs", headers={"Authorization": "Bearer nas_not-a-key"})
    assert bad.status_code == 401
    cache = api.app.state.cache  # type: ignore[attr-defined]
    assert len(cache.keys._data) == 1


def test_concurrent_misses_share_one_render_and_its_error() -> None:
    import asyncio
    import concurrent.futures

    from nas_service.api.cache import ApiCache, Rendered
    from nas_service.domain import NotFound

    cache = ApiCache(auth_ttl_s=1.0, poll_ttl_s=5.0)
    calls: list[int] = []

    def render() -> Rendered:
        calls.append(1)
        time.sleep(0.05)  # a store round trip, in the thread pool
        return Rendered(b"{}", '"v1"')

    def failing() -> Rendered:
        calls.append(1)
        time.sleep(0.05)
        raise NotFound("no job")

    async def main() -> None:
        key = (1, uuid.uuid4())
        got = await asyncio.gather(*(cache.through(cache.jobs, key, render) for _ in range(20)))
        assert len(calls) == 1 and {g.etag for g in got} == {'"v1"'}
        assert await cache.through(cache.jobs, key, render) is got[0]  # now a plain hit
        calls.clear()
        bad = (1, uuid.uuid4())
        out = await asyncio.gather(
            *(cache.through(cache.pareto, bad, failing) for _ in range(5)), return_exceptions=True
        )
        assert len(calls) == 1 and all(isinstance(e, NotFound) for e in out)
        assert cache.pareto.get(bad) is None  # errors are not cached

    # In a thread of its own: this process may host another event loop (Playwright's sync
    # API keeps one running in the main thread while a browser session is open).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, main()).result()
