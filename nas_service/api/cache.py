"""Short-lived, per-process caches for the polling hot path.

Many dashboards poll ``GET /jobs/{id}`` and ``GET /jobs/{id}/pareto`` every second. Without a
cache each poll costs a key lookup plus an ORM load and a pydantic render: about 10 ms of CPU,
which saturates one API process at under 100 polls per second on a small machine. A poll may
be up to ``poll_cache_s`` stale (the dashboard polls at that period anyway); cancel and retry
in this process drop the job's entries at once. Entries are keyed by owner, so one key never
sees another's cached data.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from threading import Lock
from typing import Generic, TypeVar

from fastapi.concurrency import run_in_threadpool

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """A bounded dict whose entries expire ``ttl_s`` after they were put. Thread-safe."""

    def __init__(self, ttl_s: float, max_entries: int = 10_000):
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._data: dict[K, tuple[float, V]] = {}
        self._lock = Lock()

    def get(self, key: K) -> V | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if time.monotonic() >= expires:
            self._data.pop(key, None)
            return None
        return value

    def put(self, key: K, value: V) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            if len(self._data) >= self.max_entries:
                self._evict()
            self._data[key] = (time.monotonic() + self.ttl_s, value)

    def drop(self, key: K) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def _evict(self) -> None:
        now = time.monotonic()
        for k in [k for k, (exp, _) in self._data.items() if exp <= now]:
            del self._data[k]
        if len(self._data) >= self.max_entries:  # all live: drop the oldest half
            for k in list(self._data)[: len(self._data) // 2]:
                del self._data[k]


@dataclass(frozen=True)
class Rendered:
    """A response body ready to send, and its validator."""

    body: bytes
    etag: str | None = None


class ApiCache:
    def __init__(self, auth_ttl_s: float, poll_ttl_s: float):
        self.keys: TTLCache[str, tuple[int, str]] = TTLCache(auth_ttl_s)
        self.jobs: TTLCache[tuple[int, uuid.UUID], Rendered] = TTLCache(poll_ttl_s)
        self.pareto: TTLCache[tuple[int, uuid.UUID], Rendered] = TTLCache(poll_ttl_s)
        self._inflight: dict[tuple[int, Hashable], asyncio.Future[Rendered]] = {}

    async def through(
        self,
        cache: TTLCache[tuple[int, uuid.UUID], Rendered],
        key: tuple[int, uuid.UUID],
        render: Callable[[], Rendered],
    ) -> Rendered:
        """The cached rendering, or one render (in the thread pool) shared by every request
        that misses at the same moment: when an entry expires under a hundred pollers, the
        store is asked once, not once per poller. A render's error reaches all of them."""
        hit = cache.get(key)
        if hit is not None:
            return hit
        slot = (id(cache), key)
        pending = self._inflight.get(slot)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[Rendered] = asyncio.get_running_loop().create_future()
        self._inflight[slot] = fut
        try:
            value = await run_in_threadpool(render)
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved here, so an error nobody else awaited is not logged
            raise
        finally:
            self._inflight.pop(slot, None)
        cache.put(key, value)
        fut.set_result(value)
        return value

    def drop_job(self, owner_id: int, job_id: uuid.UUID) -> None:
        self.jobs.drop((owner_id, job_id))
        self.pareto.drop((owner_id, job_id))
