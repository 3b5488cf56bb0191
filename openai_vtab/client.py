"""The HTTP side: one GET with retries, the writes (POST, DELETE), and lazy cursor paging. Knows nothing of SQLite.

Retries are urllib3's ``Retry`` on each session's adapter, taught what the stock class lacks: the
``retry-after-ms`` header the OpenAI API sends; failing at once (rather than sleeping or clamping) when the
server asks for a wait longer than the cap, so a query never hangs for minutes; a first backoff of 0.5 s
(urllib3 retries the first time immediately); and sleeps that end early when the query is abandoned. A body
that breaks off mid-way happens after urllib3 has handed the response over, so ``_send`` retries that itself.
Every attempt, urllib3's retries included, holds a slot of the credential's ``RateLimiter`` (ratelimit.py)
while it is on the wire, and hands it back with the answer's headers.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import takewhile
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, ProtocolError, ReadTimeoutError
from urllib3.util.retry import Retry

from ._version import __version__
from .cache import ResponseCache
from .config import DEFAULT_CONNECT_TIMEOUT, Config, Credential
from .errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    NotFoundError,
    PaginationError,
    status_error_class,
)
from .paging import JSON, Decoder, PageToken, items_at, pick
from .ratelimit import AbandonedError, RateLimiter, Slot, retry_after

if TYPE_CHECKING:
    from .tables import Table

__all__ = ["Client", "Exchange", "Pager", "encode_path", "encode_query"]

# A server asking for a longer pause than this is treated as "try again later": the query fails at once
# with the requested wait in the message instead of blocking SQLite for minutes.
MAX_RETRY_WAIT = 30.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 8.0
BACKOFF_JITTER = 0.25
# No real list this package reads comes near 10,000 pages (a million rows at limit=100); a server still
# paging past that is broken, and an error beats an endless loop.
MAX_PAGES = 10_000
RETRY_STATUSES = frozenset({408, 409, 429, *range(500, 600)})
# urllib3 retries a connection that was never made whatever the method, but a read error or a status only
# for these: a create (POST /fine_tuning/jobs) is therefore sent again only when it never reached the server.
READ_METHODS = frozenset({"GET"})
REPEATABLE_METHODS = frozenset({"GET", "POST", "DELETE"})
# A 404 is an answer about the key ("no such job"), as worth remembering as a page of data.
CACHEABLE_STATUSES = frozenset({200, 404})


class _Retry(Retry):
    RETRY_AFTER_STATUS_CODES = RETRY_STATUSES
    # The client's wait between attempts (``Client._between_attempts``), given the seconds and the answer.
    between: Callable[[float, Any], None]

    def new(self, **kw: Any) -> _Retry:
        retry = super().new(**kw)
        retry.between = self.between
        return retry

    def get_retry_after(self, response: Any) -> float | None:
        return retry_after(response.headers)

    def get_backoff_time(self) -> float:
        failures = len(list(takewhile(lambda h: h.redirect_location is None, reversed(self.history))))
        return backoff(failures) if failures else 0.0

    def increment(self, method: Any = None, url: Any = None, response: Any = None, *args: Any, **kw: Any) -> _Retry:
        if response is not None:
            wait = self.get_retry_after(response)
            if wait is not None and wait > MAX_RETRY_WAIT:
                # With raise_on_status=False urllib3 hands this response back instead of raising.
                raise MaxRetryError(kw.get("_pool"), url or "", "Retry-After beyond the cap")
        return super().increment(method, url, response, *args, **kw)

    def sleep(self, response: Any = None) -> None:
        wait = self.get_retry_after(response) if response is not None else None
        self.between(self.get_backoff_time() if wait is None else wait, response)


def backoff(failures: int) -> float:
    """Seconds to wait after the n-th failure in a row: 0.5, 1, 2, 4, 8, 8, ... plus up to 0.25 of jitter."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (failures - 1)) + random.uniform(0, BACKOFF_JITTER)


def pause(seconds: float, abandoned: threading.Event | None) -> None:
    """Sleep, unless the query is abandoned first."""
    if abandoned is None:
        time.sleep(seconds)
    elif abandoned.wait(seconds):
        raise AbandonedError()


@dataclass
class Exchange:
    """What one logical GET cost: for the request log and progress display."""

    path: str
    query: str
    status: int | None = None
    method: str = "GET"
    attempts: int = 1
    seconds: float = 0.0
    items: int = 0
    error: str | None = None
    cached: bool = False
    speculative: bool = False  # sent ahead for a join before SQLite asked for its key (readahead.py)
    started: float = field(default_factory=time.time)
    never_arrived: bool = False  # the connection was never made: the request provably did not reach the server
    # An attempt before the last reached the server and got no clear answer: a write may have been applied by it.
    earlier_attempt_reached: bool = False


@dataclass(frozen=True)
class _Answer:
    """A response as the cache keeps it: all ``_check`` needs (a cached answer has no headers)."""

    status_code: int
    content: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class Client:
    """Sends GET requests to the API for one registration: retries, error mapping, JSON checks.

    Each thread gets its own ``requests.Session`` (Session is not promised to be thread-safe).
    ``cache`` answers repeated requests; ``on_exchange`` is told of every GET, successful or not.
    A worker thread may be given an ``abandoned`` event (``start_worker``): setting it cuts its retry
    sleeps and rate-limit waits short. Every attempt goes through the ``RateLimiter`` of its credential
    (``rate_limiter``), which allows at most ``max_in_flight`` at once, fewer near the API's rate limit.
    """

    def __init__(
        self,
        config: Config,
        *,
        cache: ResponseCache | None = None,
        on_exchange: Callable[[Exchange], None] | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        self.config = config
        self.cache = cache
        self.on_exchange = on_exchange
        self.max_in_flight = max_in_flight
        self._local = threading.local()
        self._limiters: dict[str, RateLimiter] = {}
        self._limiters_lock = threading.Lock()

    def start_worker(self, abandoned: threading.Event, *, speculative: bool = False) -> None:
        """Run in each new worker thread: requests made on it stop waiting once ``abandoned`` is set, and are
        logged as ``speculative`` (read-ahead) when it is true."""
        self._local.abandoned = abandoned
        self._local.speculative = speculative

    def _session(self, methods: frozenset[str] = READ_METHODS) -> requests.Session:
        sessions = getattr(self._local, "sessions", None)
        if sessions is None:
            sessions = self._local.sessions = {}
        session = sessions.get(methods)
        if session is None:
            session = requests.Session()
            retries = _Retry(
                total=self.config.max_retries,
                connect=self.config.max_retries,
                read=self.config.max_retries,
                status=self.config.max_retries,
                other=0,
                status_forcelist=RETRY_STATUSES,
                allowed_methods=methods,
                raise_on_status=False,
                respect_retry_after_header=True,
            )
            retries.between = self._between_attempts
            adapter = HTTPAdapter(max_retries=retries)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update(self._headers())
            if self.config.loopback:
                # HTTP(S)_PROXY must not see a request meant for this machine, nor its bearer key. Not through
                # proxies={"no_proxy": ...}: requests then sets and deletes os.environ["no_proxy"] around every
                # request, which races between worker threads (KeyError: 'no_proxy'). Without the environment,
                # the CA bundle it names is still honoured.
                session.trust_env = False
                session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            sessions[methods] = session
        return session

    def rate_limiter(self, credential: Credential) -> RateLimiter:
        """The limiter that every request made with ``credential`` goes through (one per key: the API
        limits each organization's keys, and this client always talks to one host)."""
        with self._limiters_lock:
            limiter = self._limiters.get(credential.identity)
            if limiter is None:
                limiter = RateLimiter(self.max_in_flight, max_pause=MAX_RETRY_WAIT)
                self._limiters[credential.identity] = limiter
            return limiter

    def _between_attempts(self, seconds: float, response: Any) -> None:
        """urllib3 is about to send again: hand the slot back with the answer that asked for it (the limiter
        learns from a 429 that urllib3 never shows us), wait, and queue for a slot like any new request."""
        slot: Slot = self._local.slot
        slot.release(*_status_and_headers(response))
        abandoned = getattr(self._local, "abandoned", None)
        pause(seconds, abandoned)
        self._local.slot = slot.limiter.acquire(abandoned)

    def _headers(self) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "User-Agent": f"openai-vtab/{__version__} python/{platform.python_version()}",
        }
        if self.config.organization:
            headers["OpenAI-Organization"] = self.config.organization
        if self.config.project:
            headers["OpenAI-Project"] = self.config.project
        return headers

    def get(
        self,
        path: str,
        params: Mapping[str, Any],
        *,
        table: str,
        admin: bool = False,
        decoder: Decoder = JSON,
        validate: Callable[[Any], None] | None = None,
    ) -> Any:
        """GET ``path`` (already encoded) with query ``params``; the body as ``decoder`` reads it, or an APIError.

        ``admin`` requests use the admin key when one is set. ``validate`` checks a 200's body (raising an
        APIError) before it may be cached. A fresh cached answer (200 or 404) is used instead of sending.
        """
        credential = self.config.credential(admin, table=table)
        query = encode_query(params)
        exchange = Exchange(path=path, query=query, speculative=getattr(self._local, "speculative", False))
        cache_key = (self._identity(credential), path, query)
        start = time.monotonic()
        try:
            cached = self.cache.get(cache_key) if self.cache is not None else None
            if cached is not None:
                exchange.cached = True
                exchange.status, content = cached
                answer: _Answer | requests.Response = _Answer(exchange.status, content)
            else:
                answer = self._send(path, query, credential, exchange, table)
                exchange.status = answer.status_code
            body = self._check(answer, path, table, credential, exchange.attempts, decoder)
            if validate is not None:
                validate(body)
            if not exchange.cached:
                self._remember(cache_key, answer)
            exchange.items = len(body["data"]) if isinstance(body, dict) and isinstance(body.get("data"), list) else 0
            return body
        except NotFoundError:
            if not exchange.cached:
                self._remember(cache_key, answer)
            exchange.error = "HTTP 404"
            raise
        except APIError as exc:
            exchange.error = self.config.scrub(exc.message.split("; ")[0])
            raise
        finally:
            exchange.seconds = time.monotonic() - start
            if self.on_exchange is not None:
                self.on_exchange(exchange)

    def forget(self, path: str) -> None:
        """Drop every cached answer for ``path`` (after its pages turned out to be inconsistent)."""
        if self.cache is not None:
            self.cache.discard(lambda key: key[1] == path)

    def _identity(self, credential: Credential) -> tuple[str | None, ...]:
        # Everything that changes an answer, the key only as a hash: registrations with different credentials
        # never share cached rows.
        return (self.config.base_url, self.config.organization, self.config.project, credential.identity)

    def _remember(self, key: tuple[Any, ...], answer: _Answer | requests.Response) -> None:
        if self.cache is not None and answer.status_code in CACHEABLE_STATUSES:
            self.cache.put(key, answer.status_code, answer.content)

    def _send(
        self,
        path: str,
        query: str,
        credential: Credential,
        exchange: Exchange,
        table: str,
        *,
        body: Mapping[str, Any] | None = None,
        resend: bool = True,
    ) -> requests.Response:
        """One request (``exchange.method``) through the session, its retries included; requests' errors become
        ours. Without ``resend`` nothing is sent twice unless the connection was never made.

        Our errors are raised outside the ``except`` blocks on purpose: requests' exceptions hold the prepared
        request, and with it the Authorization header, which must not ride along as ``__context__``.
        """
        method = exchange.method
        session = self._session(REPEATABLE_METHODS if resend and method != "GET" else READ_METHODS)
        url = f"{self.config.base_url}{path}?{query}" if query else f"{self.config.base_url}{path}"
        timeout = (min(DEFAULT_CONNECT_TIMEOUT, self.config.timeout), self.config.timeout)
        limiter = self.rate_limiter(credential)
        abandoned = getattr(self._local, "abandoned", None)
        for attempt in range(1, self.config.max_retries + 2):
            self._local.slot = limiter.acquire(abandoned)
            response = None
            try:
                response = session.request(method, url, json=body, timeout=timeout, auth=credential)
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
                # The body broke off after urllib3's retries were done with the request: retry it here, unless it
                # may not be sent twice (a create): the server got it, and answering it may have made the object.
                error = APIConnectionError(
                    f"{table}: {method} {path} broke off before the whole answer arrived ({_reason(exc)}), "
                    f"{attempt} attempt(s); nothing partial was used: try again",
                    path=path,
                    table=table,
                )
                exchange.earlier_attempt_reached = True
            except requests.exceptions.SSLError as exc:
                error: APIError = APIConnectionError(
                    f"{table}: {method} {path}: the TLS certificate of {self.config.host} could not be verified "
                    f"({_reason(exc)}); behind a proxy with its own CA, point REQUESTS_CA_BUNDLE at its certificate",
                    path=path,
                    table=table,
                )
                break
            except requests.RequestException as exc:
                error = self._connection_error(exc, path, table, exchange, resend)
                break
            else:
                history = getattr(getattr(response.raw, "retries", None), "history", ())
                exchange.attempts += len(history)
                if any(map(_may_have_been_applied, history)):
                    exchange.earlier_attempt_reached = True
                return response
            finally:
                # The slot of the last attempt (urllib3's retries took new ones on the way).
                self._local.slot.release(*_status_and_headers(response))
            exchange.attempts = attempt
            if not resend or attempt > self.config.max_retries:
                break
            pause(backoff(attempt), abandoned)
            exchange.attempts += 1
        raise error

    def _connection_error(
        self, exc: requests.RequestException, path: str, table: str, exchange: Exchange, resend: bool = True
    ) -> APIError:
        reason = getattr(exc.args[0] if exc.args else None, "reason", None)
        exchange.never_arrived = isinstance(exc, requests.ConnectTimeout) or isinstance(reason, ConnectTimeoutError)
        if exchange.never_arrived or resend:  # urllib3 retried it before giving up
            exchange.attempts += self.config.max_retries
        method = exchange.method
        # Once retries are spent, requests reports a read timeout as a ConnectionError around it.
        if isinstance(exc, requests.Timeout) or isinstance(reason, ReadTimeoutError):
            which = "connect" if isinstance(exc, requests.ConnectTimeout) else "read"
            limit = min(DEFAULT_CONNECT_TIMEOUT, self.config.timeout) if which == "connect" else self.config.timeout
            return APITimeoutError(
                f"{table}: {method} {path} got no answer within the {which} timeout of {limit:g} s, "
                f"{exchange.attempts} attempt(s); the API may be slow or unreachable: try again, or raise the "
                "timeout (register(timeout=...), --timeout in the shell)",
                path=path,
                table=table,
            )
        cause = exc.args[0] if exc.args else None
        # Connected and sent, then closed before an answer came (wrapped in a MaxRetryError after retries).
        if isinstance(reason, ProtocolError) or isinstance(cause, ProtocolError):
            return APIConnectionError(
                f"{table}: {method} {path}: the connection to {self.config.host} broke after the request was sent, "
                f"{exchange.attempts} attempt(s) ({_reason(exc)}); try again",
                path=path,
                table=table,
            )
        return APIConnectionError(
            f"{table}: {method} {path} could not reach {self.config.host}, {exchange.attempts} attempt(s) "
            f"({_reason(exc)}); check your network and OPENAI_BASE_URL",
            path=path,
            table=table,
        )

    def _check(
        self,
        answer: _Answer | requests.Response,
        path: str,
        table: str,
        credential: Credential,
        attempts: int,
        decoder: Decoder,
        method: str = "GET",
    ) -> Any:
        if answer.status_code >= 400:
            raise self._status_error(answer, path, table, credential, attempts, method)
        try:
            return decoder.decode(answer.content)
        except (ValueError, csv.Error) as exc:
            snippet = self.config.scrub(answer.content[:60].decode("utf-8", "replace"))
            reason = getattr(exc, "msg", str(exc))
        raise APIResponseValidationError(
            f"{table}: {method} {path} answered {answer.status_code} with a body that is not {decoder.name} ({reason}; "
            f"starts {snippet!r}); check OPENAI_BASE_URL points at the OpenAI API, or try again",
            path=path,
            table=table,
        )

    def _status_error(
        self,
        answer: _Answer | requests.Response,
        path: str,
        table: str,
        credential: Credential,
        attempts: int,
        method: str = "GET",
    ) -> APIStatusError:
        status = answer.status_code
        detail, code, kind = _error_envelope(answer.content)
        verb = "read" if method == "GET" else "change"
        advice = {
            401: f"the key from {credential.source} was rejected: check it is current",
            403: f"the key from {credential.source} may not {verb} it with organization "
            f"{self.config.organization or '(default)'} and project {self.config.project or '(default)'}: "
            "check OPENAI_ORG_ID / OPENAI_PROJECT_ID",
            404: "no such resource: check the id and OPENAI_BASE_URL",
            429: "rate limited: wait and try again, or fetch fewer keys at once",
        }.get(status, "try again later" if status >= 500 or status in (408, 409) else "check the query")
        wait = retry_after(answer.headers)
        if status in RETRY_STATUSES and wait is not None and wait > MAX_RETRY_WAIT:
            advice = (
                f"the server asked to wait {wait:g} s, longer than the {MAX_RETRY_WAIT:g} s this package waits "
                "by itself; try again after that"
            )
        elif status in RETRY_STATUSES:
            advice += f" (gave up after {attempts} attempt(s))"
        message = f"{table}: {method} {path} failed with HTTP {status}"
        if detail:
            message += f": {self.config.scrub(detail)}"
        cls = status_error_class(status)
        return cls(f"{message}; {advice}", status_code=status, path=path, table=table, code=code, type=kind)

    def send(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        table: str,
        admin: bool = False,
        resend: bool = True,
        unknown_outcome: str = "",
    ) -> Any:
        """Send a write (POST or DELETE) to ``path`` (already encoded) with JSON ``body``; the decoded answer.

        With ``resend`` it is retried as a GET is. Without it (a create) it is sent again only when the connection
        was never made; when it may have reached the server and no answer says what happened (a timeout, a
        broken connection, 408 or 5xx), ``unknown_outcome`` (how to check) is added to the error. Every cached
        answer is dropped afterwards: what was read before may have changed. Never answered from the cache.
        """
        credential = self.config.credential(admin, table=table)
        exchange = Exchange(path=path, query="", method=method)
        start = time.monotonic()
        try:
            answer = self._send(path, "", credential, exchange, table, body=body, resend=resend)
            exchange.status = answer.status_code
            return self._check(answer, path, table, credential, exchange.attempts, JSON, method)
        except APIError as exc:
            exchange.error = self.config.scrub(exc.message.split("; ")[0])
            exc.earlier_attempt_reached = exchange.earlier_attempt_reached
            unknown = exchange.status is None and not exchange.never_arrived
            if not resend and unknown_outcome and (unknown or exchange.status in (408, *range(500, 600))):
                # In place of the usual "try again" advice, which could create the object twice.
                exc.outcome_unknown = True
                exc.message = f"{exc.message.rpartition('; ')[0] or exc.message}; {unknown_outcome}"
                exc.args = (exc.message,)
            raise
        except KeyboardInterrupt:
            # Ctrl-C while the call was on the wire: the server may have done it, and the log must not look clean.
            exchange.error = "interrupted while waiting for the answer: the call may have reached the server"
            raise
        finally:
            exchange.seconds = time.monotonic() - start
            if self.cache is not None:
                self.cache.clear()
            if self.on_exchange is not None:
                self.on_exchange(exchange)


def _status_and_headers(response: Any) -> tuple[int | None, Mapping[str, str] | None]:
    """What the limiter learns from an answer (a requests or a urllib3 response), or from none."""
    if response is None:
        return None, None
    return getattr(response, "status_code", None) or response.status, response.headers


def _may_have_been_applied(attempt: Any) -> bool:
    """Whether a failed attempt in urllib3's retry history reached the server without a clear answer: a 408 or
    5xx, or a connection that broke after it was made (a 429 or a redirect was not applied)."""
    if attempt.status is not None:
        return bool(attempt.status == 408 or attempt.status >= 500)
    return attempt.error is not None and not isinstance(attempt.error, ConnectTimeoutError)


def _reason(exc: BaseException) -> str:
    """The root cause of a requests error in a few words: requests wraps urllib3's MaxRetryError, whose
    ``reason`` wraps the socket's error, each repeating the connection's repr before a colon."""
    cause: Any = exc
    while isinstance(
        inner := getattr(cause, "reason", None) or (cause.args[-1] if cause.args else None), BaseException
    ):
        cause = inner
    return str(cause).rsplit(": ", 1)[-1]


def _error_envelope(content: bytes) -> tuple[str, str | None, str | None]:
    try:
        error = json.loads(content).get("error")
    except (ValueError, AttributeError):
        return "", None, None
    if not isinstance(error, dict):
        return "", None, None
    message = error.get("message")
    code, kind = error.get("code"), error.get("type")
    return (str(message) if message else ""), (str(code) if code else None), (str(kind) if kind else None)


def encode_query(params: Mapping[str, Any]) -> str:
    """A query string as the official SDK sends it: a list as ``name[]=a&name[]=b``, a bool as ``true``/``false``,
    a ``next_page`` token exactly as received (its ``=`` kept), everything else percent-encoded."""
    pairs: list[tuple[str, Any]] = []
    for name, value in params.items():
        if isinstance(value, (list, tuple)):
            pairs += [(f"{name}[]", item) for item in value]
        else:
            pairs.append((name, value))
    return "&".join(
        f"{quote(name, safe='[]')}={quote(_text(value), safe='=' if isinstance(value, PageToken) else '')}"
        for name, value in pairs
    )


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def encode_path(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{name}`` placeholders with values percent-encoded so that nothing (not even ``/``) stays raw."""
    path = template
    for name, value in values.items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    return path


class Pager:
    """Reads the rows of one table for one key combination: each ``next_page()`` is one page (one GET, or two
    when the table follows a reference to where its rows are).

    The table's paging style says what the first page asks for and what the next page's parameters are; this
    loop refuses to go on with a broken server: a repeated cursor, ``has_more`` without data, or more than
    MAX_PAGES pages. Pages are checked before the cache may keep them.
    """

    def __init__(
        self,
        client: Client,
        table: Table,
        values: Mapping[str, str],
        params: Mapping[str, Any],
        *,
        first_page_size: int | None = None,
    ) -> None:
        self.client = client
        self.table = table
        self.path = encode_path(table.path, values)
        self.params = {**table.params, **params}
        self.page_size = table.limit(self.params.get(table.options[0].name) if table.options else None)
        self.done = False
        self.pages = 0
        self._next = {**table.paging.first(first_page_size or self.page_size), **self.params}
        self._seen: set[str] = set()

    def next_page(self) -> list[dict[str, Any]]:
        """Fetch the next page's items; sets ``done`` after the last one."""
        table = self.table
        body = self.client.get(
            self.path,
            self._next,
            table=table.name,
            admin=table.admin,
            decoder=table.body,
            validate=self._validate_reference if table.follow else self._validate,
        )
        if table.follow is not None:
            # Counted once the followed resource answered: a 404 from either request is about this key.
            items = self._followed(body)
            self.pages += 1
            self.done = True
            return items
        self.pages += 1
        items = items_at(body, table.items) or []
        following = table.paging.next(body, items, self.page_size)
        if following is None:
            self.done = True
            return items
        cursor = ", ".join(f"{name}={value!r}" for name, value in sorted(following.items()) if name != "limit")
        if cursor in self._seen or self.pages >= MAX_PAGES:
            self.client.forget(self.path)
            why = f"repeated the cursor {cursor}" if cursor in self._seen else f"passed {MAX_PAGES} pages"
            raise PaginationError(
                f"{table.name}: GET {self.path} {why} and would page forever; the query stops so as not "
                "to loop: try again later, or report the server's behaviour",
                path=self.path,
                table=table.name,
            )
        self._seen.add(cursor)
        self._next = {**following, **self.params}
        return items

    def _followed(self, body: Any) -> list[dict[str, Any]]:
        """The items of the resource the table's answer names (none when it names none)."""
        follow = self.table.follow
        assert follow is not None
        ident = pick(body, follow.field)
        if not isinstance(ident, str) or not ident:
            return []
        path = encode_path(follow.path, {follow.name: ident})
        decoded = self.client.get(
            path, {}, table=self.table.name, admin=self.table.admin, decoder=follow.body, validate=self._validate
        )
        items: list[dict[str, Any]] = items_at(decoded, self.table.items) or []
        for item in items:
            item[follow.name] = ident
        return items

    def _validate_reference(self, body: Any) -> None:
        if not isinstance(body, dict):
            self._invalid("is not a JSON object")

    def _validate(self, body: Any) -> None:
        data = items_at(body, self.table.items)
        if data is None:
            self._invalid("is not an object with a 'data' list" if self.table.items == "data[]" else "is not a list")
        problem = self.table.paging.check(body, data)
        if problem is not None:
            self._invalid(problem)
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                self._invalid(f"has an item that is not an object at [{index}]")
        # A page whose items hold the rows (usage buckets) may have no rows, but never no items.
        outer = self.table.items.split("[].", 1)[0]
        page = data if outer == self.table.items else items_at(body, outer.removesuffix("[]") + "[]")
        if self.table.paging.paged and body.get("has_more") is True and not page:
            raise PaginationError(
                f"{self.table.name}: GET {self.path} said has_more=true but sent no data (page {self.pages + 1}); "
                "the result would be incomplete, so the query stops: try again later",
                path=self.path,
                table=self.table.name,
            )

    def _invalid(self, what: str) -> NoReturn:
        raise APIResponseValidationError(
            f"{self.table.name}: the response of GET {self.path} {what}; check OPENAI_BASE_URL points at the "
            "OpenAI API, or try again",
            path=self.path,
            table=self.table.name,
        )
