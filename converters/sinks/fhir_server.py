"""Load transaction Bundles into a FHIR server over REST (httpx).

A bundle is POSTed to the server base as a FHIR ``transaction`` (FHIR STU3 RESTful API §2.21.0.17:
all entries succeed or none). Busy or unreachable servers are retried (429, 502, 503, 504,
connection errors, timeouts) with exponential backoff and full jitter, honouring ``Retry-After``
(RFC 9110 §10.2.3); any other refusal is final and raised as
:class:`~converters.errors.RejectedByServer` with the server's OperationOutcome.

Retrying is safe because the bundles we send only use idempotent interactions: ``PUT Type/id`` and
the conditional update ``PUT Type?identifier=system|value``. A retry after a lost response writes
the same content again as a new version, never a second resource.

Logs name the method, the URL path, the status and the attempt; never a body, a query string
(a conditional URL carries a BSN) or an OperationOutcome text (servers echo values in it).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from converters.errors import ConfigurationError, RejectedByServer, TransientLoadError

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
ENV_PREFIX = "BABYCONNECT_FHIR_"

# "Patient/123/_history/1" at the end of an entry's response.location (absolute or relative).
_ID = r"[A-Za-z0-9\-.]{1,64}"
_LOCATION_RE = re.compile(rf"([A-Z][A-Za-z]+/{_ID}(?:/_history/{_ID})?)/?$")


@dataclass(frozen=True)
class ServerSettings:
    """How to reach the FHIR server and how hard to push it."""

    base_url: str
    bearer_token: str | None = field(default=None, repr=False)  # secrets stay out of logs
    oauth_token_url: str | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = field(default=None, repr=False)
    oauth_scope: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    verify_tls: bool = True
    ca_bundle: str | None = None
    timeout: float = 30.0
    max_retries: int = 6
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    concurrency: int = 4
    group_size: int = 1

    def __post_init__(self) -> None:
        if not self.base_url:
            raise ConfigurationError("FHIR server settings: base_url is required")
        if self.concurrency < 1 or self.group_size < 1 or self.max_retries < 0:
            raise ConfigurationError(
                "FHIR server settings: concurrency and group_size must be >= 1, max_retries >= 0"
            )
        if self.oauth_token_url and not (self.oauth_client_id and self.oauth_client_secret):
            raise ConfigurationError(
                "FHIR server settings: oauth_token_url needs oauth_client_id and "
                "oauth_client_secret"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **overrides: Any) -> ServerSettings:
        """Read ``BABYCONNECT_FHIR_URL``, ``BABYCONNECT_FHIR_TOKEN``, ``..._CLIENT_ID`` and so on.

        Every field has a variable: ``BABYCONNECT_FHIR_`` + the field name in capitals, except
        ``base_url`` (``..._URL``), ``bearer_token`` (``..._TOKEN``) and the OAuth client fields
        (``..._CLIENT_ID``, ``..._CLIENT_SECRET``, ``..._SCOPE``, ``..._OAUTH_TOKEN_URL``).
        Keyword overrides win over the environment.
        """
        values: dict[str, Any] = {}
        for f in fields(cls):
            variable = ENV_PREFIX + _ENV_NAMES.get(f.name, f.name.upper())
            if environ.get(variable, "") != "":
                values[f.name] = _convert(f.name, environ[variable], variable)
        values.update(overrides)
        if "base_url" not in values:
            raise ConfigurationError(f"{ENV_PREFIX}URL is not set")
        return cls(**values)

    @classmethod
    def from_airflow_connection(cls, conn: Any) -> ServerSettings:
        """Build settings from an Airflow connection (host, schema, port, login, password, extra).

        Follows the Airflow HTTP connection: ``host`` is a full URL or a host name, ``schema`` the
        scheme (``https`` when empty; any other value is taken as the base path, e.g. ``fhir``).
        With ``extra.oauth_token_url`` login/password are the OAuth2 client id/secret; otherwise
        ``password`` is a static bearer token. Other ``extra`` keys are ServerSettings fields.
        """
        extra = dict(getattr(conn, "extra_dejson", None) or {})
        unknown = sorted(set(extra) - _EXTRA_KEYS)
        if unknown:
            raise ConfigurationError(f"Airflow connection extra: unknown keys {unknown}")
        values: dict[str, Any] = {
            name: _convert(name, value, f"extra.{name}")
            for name, value in extra.items()
            if name != "base_path"
        }
        values["base_url"] = _connection_url(conn, str(extra.get("base_path", "")))
        if values.get("oauth_token_url"):
            values.setdefault("oauth_client_id", conn.login or None)
            values.setdefault("oauth_client_secret", conn.password or None)
        elif conn.password:
            values.setdefault("bearer_token", conn.password)
        return cls(**values)


_ENV_NAMES = {
    "base_url": "URL",
    "bearer_token": "TOKEN",
    "oauth_client_id": "CLIENT_ID",
    "oauth_client_secret": "CLIENT_SECRET",
    "oauth_scope": "SCOPE",
}
_FIELD_TYPES = {
    "verify_tls": bool,
    "timeout": float,
    "backoff_base": float,
    "backoff_cap": float,
    "max_retries": int,
    "concurrency": int,
    "group_size": int,
}
_EXTRA_KEYS = frozenset({f.name for f in fields(ServerSettings)} | {"base_path"}) - {"base_url"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(name: str, value: Any, where: str) -> Any:
    """Turn a text setting into the field's type; the error names the variable, not the value."""
    kind = _FIELD_TYPES.get(name, str)
    if not isinstance(value, str) or kind is str:
        return value
    try:
        if kind is bool:
            if value.strip().lower() not in _TRUE | _FALSE:
                raise ValueError(where)
            return value.strip().lower() in _TRUE
        return kind(value)
    except ValueError:
        raise ConfigurationError(f"{where}: expected a {kind.__name__}") from None


def _connection_url(conn: Any, base_path: str) -> str:
    host = (conn.host or "").rstrip("/")
    if not host:
        raise ConfigurationError("Airflow connection: host is required")
    schema = (conn.schema or "").strip("/")
    if "://" in host:
        url = host
    else:
        scheme = schema if schema in ("http", "https") else "https"
        url = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
    if schema and schema not in ("http", "https") and not base_path:
        base_path = schema
    return url + (f"/{base_path.strip('/')}" if base_path.strip("/") else "")


@dataclass
class LoadResult:
    """What happened to one caller's bundle."""

    key: str
    ok: bool
    server_ids: list[str]
    status: int
    error: BaseException | None = None


class RetriesExhausted(TransientLoadError):
    """The server stayed busy or unreachable through every attempt; a later run can succeed."""

    def __init__(self, attempts: int, status: int, cause: str) -> None:
        self.attempts = attempts
        self.status = status
        super().__init__(f"FHIR server unavailable after {attempts} attempts (last: {cause})")


class _Busy(Exception):
    """One attempt met a retryable answer; carries the status and the server's Retry-After."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Parse ``Retry-After``: delay-seconds or an HTTP-date (RFC 9110 §10.2.3); None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_delay(
    attempt: int, settings: ServerSettings, retry_after: float | None, rng: random.Random
) -> float:
    """Return the pause before the next attempt: the server's wish, else full jitter; capped.

    Full jitter (a uniform draw up to base * 2^attempt) spreads the retries of many workers, so a
    recovering server is not hit by all of them at once.
    """
    if retry_after is not None:
        return min(settings.backoff_cap, retry_after)
    return rng.uniform(0.0, min(settings.backoff_cap, settings.backoff_base * 2 ** (attempt - 1)))


def server_ids(response_bundle: Mapping[str, Any]) -> list[str | None]:
    """Return ``Type/id/_history/v`` per response entry, in entry order (None without location)."""
    out: list[str | None] = []
    for entry in response_bundle.get("entry") or []:
        location = ((entry or {}).get("response") or {}).get("location") or ""
        match = _LOCATION_RE.search(location.split("?", 1)[0])
        out.append(match.group(1) if match else None)
    return out


class _ClientCredentials:
    """OAuth2 client credentials grant (RFC 6749 §4.4): fetch, cache and refresh a token."""

    def __init__(self, settings: ServerSettings, client: httpx.Client) -> None:
        self._settings = settings
        self._client = client
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0

    def header(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires:
                self._token, self._expires = self._fetch()
            return f"Bearer {self._token}"

    def invalidate(self, header: str) -> None:
        with self._lock:
            if header == f"Bearer {self._token}":
                self._token = None

    def _fetch(self) -> tuple[str, float]:
        s = self._settings
        data = {"grant_type": "client_credentials"}
        if s.oauth_scope:
            data["scope"] = s.oauth_scope
        # RFC 6749 §2.3.1: servers must support client id and secret in HTTP Basic.
        auth = (s.oauth_client_id or "", s.oauth_client_secret or "")
        response = self._client.post(s.oauth_token_url or "", data=data, auth=auth)
        log.info(
            "POST %s (token) -> %s", httpx.URL(s.oauth_token_url or "").path, response.status_code
        )
        if response.status_code in RETRY_STATUSES or response.status_code >= 500:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            raise _Busy(response.status_code, retry_after)
        if not response.is_success:
            raise ConfigurationError(
                f"OAuth token endpoint refused the client: HTTP {response.status_code}"
            )
        body = response.json()
        lifetime = float(body.get("expires_in") or 300)
        # Renew a little early so a token does not expire between fetch and use.
        return str(body["access_token"]), time.monotonic() + max(lifetime - 30.0, lifetime / 2)


def ssl_verification(settings: ServerSettings) -> ssl.SSLContext | bool:
    """Return httpx's ``verify``: True (default CAs), False, or a context with CA and cert."""
    if not settings.verify_tls:
        log.warning("TLS certificate verification is OFF for the FHIR server")
        return False
    if not (settings.ca_bundle or settings.client_cert):
        return True
    import certifi

    context = ssl.create_default_context(cafile=settings.ca_bundle or certifi.where())
    if settings.client_cert:
        context.load_cert_chain(settings.client_cert, settings.client_key)
    return context


def build_client(settings: ServerSettings) -> httpx.Client:
    """Return an httpx client for these settings: TLS, client certificate, timeouts, pool size."""
    return httpx.Client(
        verify=ssl_verification(settings),
        timeout=httpx.Timeout(settings.timeout),
        limits=httpx.Limits(
            max_connections=settings.concurrency + 1,
            max_keepalive_connections=settings.concurrency + 1,
        ),
        headers={"Accept": FHIR_JSON},
    )


class FhirServerSink:
    """Send transaction Bundles to one FHIR server, retrying what can succeed."""

    def __init__(self, settings: ServerSettings, client: httpx.Client | None = None) -> None:
        self.settings = settings
        self._client = client or build_client(settings)
        self._owns_client = client is None
        self._url = settings.base_url.rstrip("/")
        self._path = httpx.URL(self._url).path or "/"
        self._oauth = (
            _ClientCredentials(settings, self._client) if settings.oauth_token_url else None
        )
        self._rng = random.Random()
        # Replaced by tests to skip real waiting; production code sleeps.
        self.sleep: Callable[[float], None] = time.sleep

    def send(self, bundle: dict) -> list[str]:
        """POST one transaction; return the ``Type/id/_history/v`` of every written entry."""
        return [sid for sid in self._transact(bundle) if sid]

    def send_many(self, items: Iterable[tuple[str, dict]]) -> Iterator[LoadResult]:
        """Load many (key, bundle) pairs concurrently; yield one LoadResult per key as each ends.

        Bundles that write the same resource URL are never in flight at the same time and keep
        their input order, so a newer version of a Patient is not overtaken by an older one.
        """
        groups = _groups(items, self.settings.group_size)
        workers = self.settings.concurrency
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fhir-load") as pool:
            dispatch = _Dispatch(pool, self._load_group, workers)
            for group in groups:
                yield from dispatch.add(group)
            yield from dispatch.drain()

    def close(self) -> None:
        """Close the HTTP client if this sink created it."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> FhirServerSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- one group --------------------------------------------------------------------------

    def _load_group(self, group: _Group) -> list[LoadResult]:
        if len(group.items) == 1:
            return [self._load_one(*group.items[0])]
        try:
            ids = self._transact(_merge([bundle for _, bundle in group.items]))
        except RejectedByServer as exc:
            # A transaction is all-or-nothing: find the refused record by sending each alone.
            log.info(
                "merged bundle of %d refused with HTTP %s; resending one by one",
                len(group.items),
                exc.status,
            )
            return [self._load_one(key, bundle) for key, bundle in group.items]
        except Exception as exc:  # noqa: BLE001 - every key must get a result
            return [_failed(key, exc) for key, _ in group.items]
        return _split(group, ids)

    def _load_one(self, key: str, bundle: dict) -> LoadResult:
        try:
            ids = self._transact(bundle)
        except Exception as exc:  # noqa: BLE001 - reported per key, the run goes on
            return _failed(key, exc)
        return LoadResult(key, True, [sid for sid in ids if sid], 200)

    # -- one request ------------------------------------------------------------------------

    def _transact(self, bundle: dict) -> list[str | None]:
        body = json.dumps(bundle, separators=(",", ":"), ensure_ascii=False).encode()
        response = self._post_with_retries(body)
        try:
            return server_ids(response.json())
        except ValueError:
            log.warning("POST %s -> %s without a JSON body", self._path, response.status_code)
            return []

    def _post_with_retries(self, body: bytes) -> httpx.Response:
        attempts = self.settings.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return self._post_once(body, attempt)
            except _Busy as busy:
                status, retry_after, cause = busy.status, busy.retry_after, f"HTTP {busy.status}"
            except httpx.TransportError as exc:  # connection refused/reset/dropped, timeouts
                status, retry_after, cause = 0, None, type(exc).__name__
                log.warning(
                    "POST %s failed: %s (attempt %d/%d)", self._path, cause, attempt, attempts
                )
            if attempt < attempts:
                self.sleep(backoff_delay(attempt, self.settings, retry_after, self._rng))
        raise RetriesExhausted(attempts, status, cause)

    def _post_once(self, body: bytes, attempt: int) -> httpx.Response:
        response = self._post(body, self._auth_header())
        if response.status_code == 401 and self._oauth is not None:
            # The token may have been revoked or expired early: fetch a new one, once.
            self._oauth.invalidate(response.request.headers.get("Authorization", ""))
            response = self._post(body, self._auth_header())
        if response.is_success:
            log.debug("POST %s -> %s (attempt %d)", self._path, response.status_code, attempt)
            return response
        log.warning("POST %s -> %s (attempt %d)", self._path, response.status_code, attempt)
        if response.status_code in RETRY_STATUSES:
            raise _Busy(
                response.status_code, retry_after_seconds(response.headers.get("Retry-After"))
            )
        raise RejectedByServer(response.status_code, _operation_outcome(response))

    def _post(self, body: bytes, authorization: str | None) -> httpx.Response:
        headers = {
            "Content-Type": f"{FHIR_JSON}; charset=utf-8",
            # Only locations are needed back; bodies would double the traffic.
            "Prefer": "return=minimal",
        }
        if authorization:
            headers["Authorization"] = authorization
        return self._client.post(self._url, content=body, headers=headers)

    def _auth_header(self) -> str | None:
        if self._oauth is not None:
            return self._oauth.header()
        return f"Bearer {self.settings.bearer_token}" if self.settings.bearer_token else None


def _operation_outcome(response: httpx.Response) -> dict | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return body
    return None


def _failed(key: str, exc: BaseException) -> LoadResult:
    status = getattr(exc, "status", 0)
    if not isinstance(exc, (RejectedByServer, TransientLoadError)):
        log.error("loading %s failed: %s", key, type(exc).__name__)
    return LoadResult(key, False, [], status if isinstance(status, int) else 0, exc)


# -- grouping and ordering --------------------------------------------------------------------


@dataclass
class _Group:
    """Bundles sent as one transaction, and the resource URLs they write."""

    items: list[tuple[str, dict]] = field(default_factory=list)
    urls: set[str] = field(default_factory=set)
    sizes: list[int] = field(default_factory=list)


def _bundle_urls(bundle: Mapping[str, Any]) -> set[str]:
    """Request URLs and fullUrls of a bundle's entries: what must not meet twice in one flight."""
    urls: set[str] = set()
    for entry in bundle.get("entry") or []:
        url = (entry.get("request") or {}).get("url")
        if url:
            urls.add(url)
        if entry.get("fullUrl"):
            urls.add(entry["fullUrl"])
    return urls


def _groups(items: Iterable[tuple[str, dict]], size: int) -> Iterator[_Group]:
    """Cut the input into groups of at most ``size`` bundles that write disjoint resources.

    Two entries for the same resource in one transaction are an error (FHIR transaction
    processing rules), so a bundle touching a URL already in the group starts a new group.
    """
    current = _Group()
    for key, bundle in items:
        urls = _bundle_urls(bundle)
        if current.items and (len(current.items) >= size or not current.urls.isdisjoint(urls)):
            yield current
            current = _Group()
        current.items.append((key, bundle))
        current.urls |= urls
        current.sizes.append(len(bundle.get("entry") or []))
    if current.items:
        yield current


def _merge(bundles: Sequence[Mapping[str, Any]]) -> dict:
    entries = [entry for bundle in bundles for entry in bundle.get("entry") or []]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _split(group: _Group, ids: list[str | None]) -> list[LoadResult]:
    if len(ids) != sum(group.sizes):
        log.warning(
            "response has %d entries for %d sent; server ids not attributed",
            len(ids),
            sum(group.sizes),
        )
        return [LoadResult(key, True, [], 200) for key, _ in group.items]
    results, start = [], 0
    for (key, _), size in zip(group.items, group.sizes, strict=True):
        results.append(LoadResult(key, True, [s for s in ids[start : start + size] if s], 200))
        start += size
    return results


class _Dispatch:
    """Run groups on a pool, never two groups writing the same URL at once, in input order."""

    def __init__(
        self, pool: ThreadPoolExecutor, work: Callable[[_Group], list[LoadResult]], workers: int
    ) -> None:
        self._pool = pool
        self._work = work
        self._workers = workers
        self._waiting: deque[_Group] = deque()
        self._running: dict[Future[list[LoadResult]], _Group] = {}

    def add(self, group: _Group) -> Iterator[LoadResult]:
        self._waiting.append(group)
        self._start_ready()
        # Bounded read-ahead: the input may be a lazy reader over a very large file.
        while len(self._waiting) + len(self._running) >= 2 * self._workers and self._running:
            yield from self._collect()

    def drain(self) -> Iterator[LoadResult]:
        while self._running:
            yield from self._collect()

    def _start_ready(self) -> None:
        blocked: set[str] = set()
        for running in self._running.values():
            blocked |= running.urls
        waiting, self._waiting = self._waiting, deque()
        for group in waiting:
            if len(self._running) < self._workers and blocked.isdisjoint(group.urls):
                self._running[self._pool.submit(self._work, group)] = group
            else:
                self._waiting.append(group)
            # A later group touching these URLs must wait behind this one, started or not.
            blocked |= group.urls

    def _collect(self) -> Iterator[LoadResult]:
        done, _ = wait(self._running, return_when=FIRST_COMPLETED)
        for future in done:
            del self._running[future]
            yield from future.result()
        self._start_ready()
