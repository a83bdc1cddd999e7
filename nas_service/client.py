"""A small typed client for the REST API (``/api/v1``), used by the CLI and the quick start.

It speaks HTTP only: nothing here touches the database or the workers. Errors come back as
:class:`ApiError` carrying the problem+json body, so callers can show the API's own messages.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from nas_service.domain.states import TERMINAL

API_PREFIX = "/api/v1"
DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL_STATES = frozenset(s.value for s in TERMINAL)

Json = dict[str, Any]


class ApiError(Exception):
    """A non-2xx answer. ``problem`` is the problem+json body (or a stand-in built from text)."""

    def __init__(self, status: int, problem: Json):
        self.status = status
        self.problem = problem
        super().__init__(self._message())

    @property
    def code(self) -> str | None:
        code = self.problem.get("code")
        return str(code) if code is not None else None

    @property
    def field_errors(self) -> list[Json]:
        errors = self.problem.get("errors")
        return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []

    def _message(self) -> str:
        title = self.problem.get("title") or "error"
        detail = self.problem.get("detail")
        head = f"HTTP {self.status} {title}" + (f": {detail}" if detail else "")
        lines = [f"  {e.get('field', '?')}: {e.get('reason', '')}" for e in self.field_errors]
        return "\n".join([head, *lines])


def items_of(page: Any) -> list[Json]:
    """The list inside a paginated answer (``{"items": [...]}``) or a bare JSON list."""
    if isinstance(page, list):
        return [x for x in page if isinstance(x, dict)]
    if isinstance(page, dict):
        for key in ("items", "data", "results"):
            value = page.get(key)
            if isinstance(value, list):
                return [x for x in value if isinstance(x, dict)]
    return []


def next_cursor_of(page: Any) -> str | None:
    if not isinstance(page, dict):
        return None
    for key in ("next_cursor", "next", "cursor"):
        value = page.get(key)
        if isinstance(value, str) and value:
            return value
    return None


class NasClient:
    """Synchronous client. ``base_url`` is the server root (the API prefix is added here)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            base_url=self.base_url + API_PREFIX,
            headers=headers,
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> NasClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise ApiError(response.status_code, _problem_of(response))
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return {}
        return response.json()

    # -- service ----------------------------------------------------------------------------

    def health(self) -> Json:
        return dict(self._json("GET", "/healthz"))

    def ready(self) -> bool:
        try:
            self._request("GET", "/readyz")
        except (ApiError, httpx.HTTPError):
            return False
        return True

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.base_url} not ready after {timeout:.0f}s")
            time.sleep(interval)

    def search_spaces(self) -> list[Json]:
        return items_of(self._json("GET", "/search-spaces"))

    def devices(self) -> list[Json]:
        return items_of(self._json("GET", "/devices"))

    # -- jobs -------------------------------------------------------------------------------

    def submit_job(self, spec: Json) -> Json:
        return dict(self._json("POST", "/jobs", json=spec))

    def list_jobs(self, status: str | None = None, limit: int = 50) -> list[Json]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return items_of(self._json("GET", "/jobs", params=params))

    def get_job(self, job_id: str) -> Json:
        return dict(self._json("GET", f"/jobs/{job_id}"))

    def cancel_job(self, job_id: str) -> Json:
        return dict(self._json("POST", f"/jobs/{job_id}/cancel"))

    def retry_job(self, job_id: str) -> Json:
        return dict(self._json("POST", f"/jobs/{job_id}/retry"))

    def events(self, job_id: str) -> list[Json]:
        return items_of(self._json("GET", f"/jobs/{job_id}/events"))

    def metrics(self, job_id: str, after: int | None = None) -> list[Json]:
        params = {"after": after} if after is not None else {}
        return items_of(self._json("GET", f"/jobs/{job_id}/metrics", params=params))

    def candidates(self, job_id: str, **params: Any) -> list[Json]:
        return items_of(self._json("GET", f"/jobs/{job_id}/candidates", params=params))

    def pareto(self, job_id: str, etag: str | None = None) -> tuple[Json | None, str | None]:
        """The current front, or ``None`` when it is unchanged since ``etag`` (304)."""
        headers = {"If-None-Match": etag} if etag else {}
        response = self._request("GET", f"/jobs/{job_id}/pareto", headers=headers)
        if response.status_code == 304:
            return None, etag
        return dict(response.json()), response.headers.get("ETag")

    def follow(self, job_id: str, interval: float = 1.0) -> Iterator[Json]:
        """Yield the job every ``interval`` seconds until it reaches a terminal state."""
        while True:
            job = self.get_job(job_id)
            yield job
            if job.get("status") in TERMINAL_STATES:
                return
            time.sleep(interval)

    # -- downloads --------------------------------------------------------------------------

    def download_subnet(
        self,
        candidate_id: str,
        fmt: str = "weights",
        dest: Path | None = None,
        *,
        timeout: float = 600.0,
        max_wait: float = 10.0,
    ) -> Path:
        """Fetch an exported subnet, waiting while the server answers 202 (export in progress).
        Written to a temp file then renamed, so a partial download never looks complete."""
        deadline = time.monotonic() + timeout
        path = f"/candidates/{candidate_id}/subnet"
        while True:
            with self._http.stream("GET", path, params={"format": fmt}) as response:
                if response.status_code == 202:
                    wait = _retry_after(response, default=1.0, cap=max_wait)
                elif response.status_code >= 400:
                    response.read()
                    raise ApiError(response.status_code, _problem_of(response))
                else:
                    target = dest or Path(_filename_of(response, candidate_id, fmt))
                    if target.is_dir():
                        target = target / _filename_of(response, candidate_id, fmt)
                    partial = target.with_name(target.name + ".part")
                    with partial.open("wb") as out:
                        for chunk in response.iter_bytes():
                            out.write(chunk)
                    partial.replace(target)
                    return target
            if time.monotonic() + wait > deadline:
                raise TimeoutError(f"subnet {candidate_id} ({fmt}) not ready after {timeout:.0f}s")
            time.sleep(wait)


def _filename_of(response: httpx.Response, candidate_id: str, fmt: str) -> str:
    disposition = response.headers.get("Content-Disposition", "")
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "filename" and value:
            name = Path(value.strip('"')).name  # never let a header choose a directory
            if name:
                return name
    from nas_service.catalog import UnknownEntry, exports

    try:
        return f"subnet-{candidate_id}.{exports.suffix(fmt)}"
    except UnknownEntry:
        return f"subnet-{candidate_id}.{fmt}"


def _retry_after(response: httpx.Response, default: float, cap: float) -> float:
    try:
        value = float(response.headers.get("Retry-After", default))
    except ValueError:
        value = default
    return min(max(value, 0.1), cap)


def _problem_of(response: httpx.Response) -> Json:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    return {
        "status": response.status_code,
        "title": response.reason_phrase,
        "detail": response.text,
    }
