"""A small typed client for the REST API (``/api/v1``), used by the CLI, the quick start and
scripts (see ``examples/client_example.py``).

It speaks HTTP only: nothing here touches the database or the workers. Every failure is a
:class:`NasError`: :class:`ApiError` for a non-2xx answer (carrying the problem+json body, so
callers can show the API's own messages), :class:`ConnectionFailed` when no answer came (server
down, unknown host, timeout, not an HTTP server), :class:`InvalidUrl` for a base URL that is not
``http(s)://host[:port]``. ``str()`` of each is one line.

Lists are paged by the server (``{"items": [...], "next_cursor": ...}``); the ``list_*`` /
``candidates`` / ``events`` methods follow the cursor until ``limit`` items are read
(``limit=None``: all of them).
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
PAGE_SIZE = 200  # items asked for per request when a list is read page by page

Json = dict[str, Any]


class NasError(Exception):
    """Anything that went wrong talking to the service; ``str()`` is one line."""


class InvalidUrl(NasError, ValueError):
    """The base URL cannot name a NAS server (no ``http://`` or ``https://``, no host)."""


class ConnectionFailed(NasError):
    """No HTTP answer. ``reason`` is one of ``refused``, ``unknown_host``, ``timeout``,
    ``protocol`` (something answered, but not HTTP) or ``other``."""

    def __init__(self, url: str, reason: str, message: str):
        self.url = url
        self.reason = reason
        super().__init__(message)


class ApiError(NasError):
    """A non-2xx answer. ``problem`` is the problem+json body (or a stand-in built from text);
    ``is_problem`` says whether the server sent problem+json (a NAS server always does)."""

    def __init__(self, status: int, problem: Json, *, is_problem: bool = True):
        self.status = status
        self.problem = problem
        self.is_problem = is_problem
        super().__init__(self._message())

    @property
    def code(self) -> str | None:
        code = self.problem.get("code")
        return str(code) if code is not None else None

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail") or self.problem.get("title") or "error")

    @property
    def field_errors(self) -> list[Json]:
        errors = self.problem.get("errors")
        return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []

    def _message(self) -> str:
        if self.field_errors:  # the detail repeats (some of) them: name each once, here
            fields = "; ".join(
                f"{e.get('field', '?')}: {e.get('reason', '')}" for e in self.field_errors
            )
            title = str(self.problem.get("title") or "invalid input").lower()
            return f"{title} (HTTP {self.status}): {fields}"
        return f"{_one_line(self.detail)} (HTTP {self.status})"


def check_url(url: str) -> str:
    """``url`` without a trailing slash, or :class:`InvalidUrl` saying what is wrong."""
    text = url.strip()
    try:
        parsed = httpx.URL(text)
    except (httpx.InvalidURL, TypeError) as e:
        raise InvalidUrl(f"{url!r} is not a URL ({e})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        guess = "http://" + text.split("://", 1)[-1].lstrip("/")
        raise InvalidUrl(
            f"{url!r} is not an http(s) URL; did you mean {guess!r}?"
            if text
            else "the server URL is empty"
        )
    return text.rstrip("/")


def items_of(page: Any) -> list[Json]:
    """The list inside a paginated answer (``{"items": [...]}``) or a bare JSON list."""
    if isinstance(page, list):
        return [x for x in page if isinstance(x, dict)]
    if isinstance(page, dict):
        value = page.get("items")
        if isinstance(value, list):
            return [x for x in value if isinstance(x, dict)]
    return []


def next_cursor_of(page: Any) -> str | None:
    if not isinstance(page, dict):
        return None
    value = page.get("next_cursor")
    return value if isinstance(value, str) and value else None


class NasClient:
    """Synchronous client. ``base_url`` is the server root (the API prefix is added here).

    >>> with NasClient("http://127.0.0.1:8000", "nas_...") as nas:   # doctest: +SKIP
    ...     job = nas.submit_job(spec)
    ...     job = nas.wait(job["id"])
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = check_url(base_url)
        self.timeout = timeout
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
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise self._connection_failed(e) from e
        if response.status_code >= 400:
            raise _api_error(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise ConnectionFailed(
                self.base_url,
                "protocol",
                f"{self.base_url} answered {method} {API_PREFIX}{path} with something other "
                "than JSON",
            ) from None

    def _connection_failed(self, e: httpx.TransportError) -> ConnectionFailed:
        return connection_failed(self.base_url, e, self.timeout)

    def _pages(self, path: str, params: dict[str, Any], limit: int | None) -> Iterator[Json]:
        """Every item of a paged list, following ``next_cursor`` (at most ``limit``)."""
        params = dict(params)
        seen = 0
        while True:
            want = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - seen)
            if want <= 0:
                return
            page = self._json("GET", path, params={**params, "limit": want})
            items = items_of(page)
            yield from items
            seen += len(items)
            cursor = next_cursor_of(page)
            if not cursor or not items:
                return
            params["cursor"] = cursor

    # -- service ----------------------------------------------------------------------------

    def health(self) -> Json:
        return dict(self._json("GET", "/healthz"))

    def ready(self) -> bool:
        try:
            self._request("GET", "/readyz")
        except NasError:
            return False
        return True

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.base_url} not ready after {timeout:.0f}s")
            time.sleep(interval)

    def catalog(self) -> Json:
        return dict(self._json("GET", "/catalog"))

    def search_spaces(self) -> list[Json]:
        return list(self._pages("/search-spaces", {}, None))

    def devices(self) -> list[Json]:
        """The devices (latency targets) a job may name in ``devices``."""
        return list(self._pages("/devices", {}, None))

    # -- jobs -------------------------------------------------------------------------------

    def submit_job(self, spec: Json) -> Json:
        return dict(self._json("POST", "/jobs", json=spec))

    def iter_jobs(
        self, status: str | list[str] | None = None, limit: int | None = None
    ) -> Iterator[Json]:
        params: dict[str, Any] = {}
        if status:
            params["status"] = [status] if isinstance(status, str) else list(status)
        return self._pages("/jobs", params, limit)

    def list_jobs(
        self, status: str | list[str] | None = None, limit: int | None = 50
    ) -> list[Json]:
        """This key's jobs, newest first (``limit=None``: all of them)."""
        return list(self.iter_jobs(status, limit))

    def get_job(self, job_id: str) -> Json:
        return dict(self._json("GET", f"/jobs/{job_id}"))

    def cancel_job(self, job_id: str) -> Json:
        return dict(self._json("POST", f"/jobs/{job_id}/cancel"))

    def retry_job(self, job_id: str) -> Json:
        return dict(self._json("POST", f"/jobs/{job_id}/retry"))

    def delete_job(self, job_id: str, wait: float = 60.0, interval: float = 0.5) -> None:
        """Remove the job, its rows and its files. A running job is cancelled first: the server
        answers 409 ``job_running`` until its runner has stopped, so this polls for up to
        ``wait`` seconds and deletes again (``wait=0``: raise that 409 at once)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                self._request("DELETE", f"/jobs/{job_id}")
                return
            except ApiError as e:
                if e.code != "job_running" or time.monotonic() + interval > deadline:
                    raise
            time.sleep(interval)

    def events(self, job_id: str, limit: int | None = None) -> list[Json]:
        """The job's state changes and notes, oldest first."""
        return list(self._pages(f"/jobs/{job_id}/events", {}, limit))

    def metrics(self, job_id: str, limit: int | None = None) -> list[Json]:
        """The training curves, one item per reported epoch."""
        return list(self._pages(f"/jobs/{job_id}/metrics", {}, limit))

    def log_chunk(self, job_id: str, offset: int = 0) -> tuple[str, int, bool]:
        """Whole lines of the job's log from byte ``offset``: (text, the offset to read on
        from, whether more can be read at once)."""
        response = self._request(
            "GET", f"/jobs/{job_id}/logs", params={"offset": offset}, headers={"Accept": "*/*"}
        )
        nxt = int(response.headers.get("X-Log-Offset", offset + len(response.content)))
        more = 'rel="next"' in response.headers.get("Link", "")
        return response.text, nxt, more

    def logs(self, job_id: str) -> list[str]:
        """The lines of the job's log so far (its runner's records, every attempt)."""
        return list(self._log_lines(job_id, 0)[0])

    def follow_logs(self, job_id: str, interval: float = 1.0) -> Iterator[str]:
        """The log's lines as they are written, until the job has ended and all is read."""
        offset = 0
        while True:
            ended = self.get_job(job_id).get("status") in TERMINAL_STATES
            lines, offset = self._log_lines(job_id, offset)
            yield from lines
            if ended:
                return
            time.sleep(interval)

    def _log_lines(self, job_id: str, offset: int) -> tuple[list[str], int]:
        lines: list[str] = []
        while True:
            text, offset, more = self.log_chunk(job_id, offset)
            lines += text.splitlines()
            if not more:
                return lines, offset

    def candidates(
        self,
        job_id: str,
        *,
        sort: str = "id",
        order: str = "asc",
        source: str | None = None,
        feasible: bool | None = None,
        pareto: bool | None = None,
        device: str | None = None,
        limit: int | None = 100,
    ) -> list[Json]:
        """The job's candidates, filtered and sorted by the server (``sort`` is an objective
        column such as ``accuracy`` or ``latency_ms``, or ``id`` / ``created_at``)."""
        params: dict[str, Any] = {"sort": sort, "order": order}
        for name, value in (("source", source), ("device", device)):
            if value is not None:
                params[name] = value
        for name, flag in (("feasible", feasible), ("pareto", pareto)):
            if flag is not None:
                params[name] = "true" if flag else "false"
        return list(self._pages(f"/jobs/{job_id}/candidates", params, limit))

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

    def wait(self, job_id: str, timeout: float | None = None, interval: float = 1.0) -> Json:
        """The job once it has ended (succeeded, failed or cancelled); :class:`TimeoutError`
        after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for job in self.follow(job_id, interval=interval):
            if job.get("status") in TERMINAL_STATES:
                return job
            if deadline is not None and time.monotonic() + interval > deadline:
                raise TimeoutError(f"job {job_id} still {job.get('status')} after {timeout:.0f}s")
        raise AssertionError("unreachable: follow() ends with a terminal job")

    # -- datasets ---------------------------------------------------------------------------

    def list_datasets(self, limit: int | None = None) -> list[Json]:
        return list(self._pages("/datasets", {}, limit))

    def get_dataset(self, dataset_id: str) -> Json:
        return dict(self._json("GET", f"/datasets/{dataset_id}"))

    def upload_dataset(self, path: Path, name: str | None = None, fmt: str | None = None) -> Json:
        """Upload an ``.npz`` (arrays ``x``, ``y``) or a ``.zip`` of one folder per class."""
        data = {k: v for k, v in (("name", name), ("format", fmt)) if v}
        with path.open("rb") as f:
            return dict(
                self._json(
                    "POST",
                    "/datasets",
                    files={"file": (path.name, f, "application/octet-stream")},
                    data=data,
                )
            )

    def delete_dataset(self, dataset_id: str) -> None:
        """Remove an uploaded dataset (refused with 409 while a job uses it)."""
        self._request("DELETE", f"/datasets/{dataset_id}")

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
            try:
                with self._http.stream("GET", path, params={"format": fmt}) as response:
                    if response.status_code == 202:
                        wait = _retry_after(response, default=1.0, cap=max_wait)
                    elif response.status_code >= 400:
                        response.read()
                        raise _api_error(response)
                    else:
                        return _save(response, dest, candidate_id, fmt)
            except httpx.TransportError as e:
                raise self._connection_failed(e) from e
            if time.monotonic() + wait > deadline:
                raise TimeoutError(f"subnet {candidate_id} ({fmt}) not ready after {timeout:.0f}s")
            time.sleep(wait)


def connection_failed(url: str, e: httpx.TransportError, timeout: float) -> ConnectionFailed:
    """A transport error as one line that says what happened, without the traceback."""
    text = str(e) or type(e).__name__
    low = text.lower()
    if isinstance(e, httpx.TimeoutException):
        return ConnectionFailed(url, "timeout", f"no answer from {url} within {timeout:g}s")
    if isinstance(e, httpx.ConnectError):
        if "refused" in low:
            return ConnectionFailed(url, "refused", f"cannot connect to {url}: connection refused")
        if any(
            s in low
            for s in ("name or service not known", "name resolution", "nodename nor servname",
                      "no address associated", "getaddrinfo")
        ):  # fmt: skip
            host = httpx.URL(url).host
            return ConnectionFailed(
                url, "unknown_host", f"cannot connect to {url}: unknown host {host!r}"
            )
        return ConnectionFailed(url, "other", f"cannot connect to {url}: {_one_line(text)}")
    if isinstance(e, httpx.ProtocolError):
        return ConnectionFailed(
            url, "protocol", f"{url} did not answer with HTTP ({_one_line(text)})"
        )
    return ConnectionFailed(url, "other", f"request to {url} failed: {_one_line(text)}")


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _save(response: httpx.Response, dest: Path | None, candidate_id: str, fmt: str) -> Path:
    target = dest or Path(_filename_of(response, candidate_id, fmt))
    if target.is_dir():
        target = target / _filename_of(response, candidate_id, fmt)
    partial = target.with_name(target.name + ".part")
    try:
        with partial.open("wb") as out:
            for chunk in response.iter_bytes():
                out.write(chunk)
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target


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


def _api_error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and ("detail" in body or "title" in body):
        problem = dict(body)
        problem.setdefault("status", response.status_code)
        return ApiError(response.status_code, problem, is_problem="code" in body)
    # Not a NAS server's answer (a proxy's or another server's page): its reason phrase only.
    reason = response.reason_phrase or "error"
    problem = {"status": response.status_code, "title": reason, "detail": reason}
    return ApiError(response.status_code, problem, is_problem=False)
