"""The HTTP side: configuration, one GET with retries, and lazy cursor paging. Knows nothing of SQLite.

Retries are urllib3's ``Retry`` on each session's adapter, taught two things the stock class lacks: the
``retry-after-ms`` header the OpenAI API sends, and failing at once (rather than sleeping or clamping) when
the server asks for a wait longer than the cap, so a query never hangs for minutes on a rate limit.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import platform
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ReadTimeoutError
from urllib3.util.retry import Retry

from ._version import __version__
from .cache import ResponseCache
from .errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    ConfigurationError,
    MissingAPIKeyError,
    NotFoundError,
    PaginationError,
    status_error_class,
)

__all__ = ["Client", "Config", "Pager", "mask_key"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 2
# A server asking for a longer pause than this is treated as "try again later": the query fails at once
# with the requested wait in the message instead of blocking SQLite for minutes.
MAX_RETRY_WAIT = 30.0
# No real list this package reads comes near 10,000 pages (a million rows at limit=100); a server still
# paging past that is broken, and an error beats an endless loop.
MAX_PAGES = 10_000
RETRY_STATUSES = frozenset({408, 409, 429, *range(500, 600)})
# A 404 is an answer about the key ("no such job"), as worth remembering as a page of data.
CACHEABLE_STATUSES = frozenset({200, 404})


def mask_key(key: str | None) -> str:
    """A key shown safely: its prefix and last four characters (``sk-...wxyz``), never more."""
    if not key:
        return "(not set)"
    prefix = "sk-" if key.startswith("sk-") else ""
    return f"{prefix}...{key[-4:]}" if len(key) >= 12 else f"{prefix}..."


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Config:
    """Effective settings of one ``register()`` call, and where each came from.

    ``sources`` maps a setting name to ``"option"``, the environment variable it was read from, or
    ``"default"``. The key is kept out of ``repr`` so that a printed config can never leak it.
    """

    api_key: str | None = field(repr=False)
    admin_api_key: str | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    organization: str | None = None
    project: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    allow_insecure_http: bool = False
    sources: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def resolve(
        cls,
        *,
        api_key: str | None = None,
        admin_api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        allow_insecure_http: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> Config:
        """Settings from keyword options, falling back to the environment as the official SDK reads it."""
        env = os.environ if environ is None else environ
        sources: dict[str, str] = {}

        def pick(name: str, option: Any, variable: str | None, default: Any) -> Any:
            if option is not None:
                sources[name] = "option"
                return option
            if variable and env.get(variable):
                sources[name] = variable
                return env[variable]
            sources[name] = "default"
            return default

        config = cls(
            api_key=pick("api_key", api_key, "OPENAI_API_KEY", None),
            admin_api_key=pick("admin_api_key", admin_api_key, "OPENAI_ADMIN_KEY", None),
            base_url=pick("base_url", base_url, "OPENAI_BASE_URL", DEFAULT_BASE_URL).rstrip("/"),
            organization=pick("organization", organization, "OPENAI_ORG_ID", None),
            project=pick("project", project, "OPENAI_PROJECT_ID", None),
            timeout=float(pick("timeout", timeout, None, DEFAULT_TIMEOUT)),
            max_retries=int(pick("max_retries", max_retries, None, DEFAULT_MAX_RETRIES)),
            allow_insecure_http=allow_insecure_http,
            sources=sources,
        )
        config.check()
        return config

    def check(self) -> None:
        """Reject settings that cannot work or would expose the key, before anything is sent."""
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"base URL {self.base_url!r} is not an http(s) URL: set OPENAI_BASE_URL or base_url= to "
                f"something like {DEFAULT_BASE_URL}"
            )
        if parts.scheme == "http" and not _is_loopback(parts.hostname) and not self.allow_insecure_http:
            raise ConfigurationError(
                f"base URL {self.base_url!r} is plain http to a remote host, which would send the API key in "
                "clear text: use https, or pass allow_insecure_http=True to register() if you really mean it"
            )
        if self.timeout <= 0:
            raise ConfigurationError(f"timeout must be a positive number of seconds, not {self.timeout!r}")
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more, not {self.max_retries!r}")

    def credential(self, admin: bool) -> tuple[str, str]:
        """The key for a request and where it came from, for messages (never the key itself).

        Admin endpoints use the admin key when one is set and fall back to the normal key.
        """
        if admin and self.admin_api_key:
            return self.admin_api_key, _where("admin_api_key", self.admin_api_key, self.sources, "OPENAI_ADMIN_KEY")
        if self.api_key:
            source = _where("api_key", self.api_key, self.sources, "OPENAI_API_KEY")
            if admin:
                source = f"{source[:-1]}; admin endpoints use OPENAI_ADMIN_KEY or register(admin_api_key=...) when set)"
            return self.api_key, source
        raise MissingAPIKeyError(
            "no OpenAI API key: set the OPENAI_API_KEY environment variable"
            + (" (or OPENAI_ADMIN_KEY for this admin endpoint)" if admin else "")
            + ", or pass api_key= to openai_vtab.register() (or run the shell with --demo to try it on sample data)"
        )

    def scrub(self, text: str) -> str:
        """Server text with any of our keys masked: some servers echo a rejected key in their message."""
        for key in (self.api_key, self.admin_api_key):
            if key and key in text:
                text = text.replace(key, mask_key(key))
        return text

    def describe(self) -> list[tuple[str, str, str]]:
        """(setting, value, source) rows for display, with the key masked."""
        values = {
            "api_key": mask_key(self.api_key),
            "admin_api_key": mask_key(self.admin_api_key),
            "base_url": self.base_url,
            "organization": self.organization or "(not set)",
            "project": self.project or "(not set)",
            "timeout": f"{self.timeout:g} s",
            "max_retries": str(self.max_retries),
        }
        return [(name, value, self.sources.get(name, "default")) for name, value in values.items()]


class _Retry(Retry):
    """urllib3's Retry that reads ``retry-after-ms`` and gives up at once past ``max_wait`` seconds."""

    RETRY_AFTER_STATUS_CODES = RETRY_STATUSES
    max_wait: float = MAX_RETRY_WAIT

    def new(self, **kw: Any) -> _Retry:
        retry = super().new(**kw)
        retry.max_wait = self.max_wait
        return retry

    def get_retry_after(self, response: Any) -> float | None:
        millis = response.headers.get("retry-after-ms")
        if millis is not None:
            try:
                return max(0.0, float(millis) / 1000)
            except ValueError:
                pass
        try:
            return super().get_retry_after(response)
        except Exception:  # an unparsable Retry-After falls back to our own backoff
            return None

    def increment(self, method: Any = None, url: Any = None, response: Any = None, *args: Any, **kw: Any) -> _Retry:
        if response is not None:
            wait = self.get_retry_after(response)
            if wait is not None and wait > self.max_wait:
                # With raise_on_status=False urllib3 hands this response back instead of raising.
                raise MaxRetryError(kw.get("_pool"), url or "", "Retry-After beyond the cap")
        return super().increment(method, url, response, *args, **kw)


@dataclass
class Exchange:
    """What one logical GET cost: for the request log and progress display."""

    path: str
    query: str
    status: int | None = None
    attempts: int = 1
    seconds: float = 0.0
    items: int = 0
    error: str | None = None
    cached: bool = False
    started: float = field(default_factory=time.time)


class Client:
    """Sends GET requests to the API for one registration: retries, error mapping, JSON checks.

    Each thread gets its own ``requests.Session`` (Session is not promised to be thread-safe).
    ``cache`` answers repeated requests; ``on_exchange`` is told of every GET, successful or not.
    """

    def __init__(
        self,
        config: Config,
        *,
        cache: ResponseCache | None = None,
        on_exchange: Callable[[Exchange], None] | None = None,
    ) -> None:
        self.config = config
        self.cache = cache
        self.on_exchange = on_exchange
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            retries = _Retry(
                total=self.config.max_retries,
                connect=self.config.max_retries,
                read=self.config.max_retries,
                status=self.config.max_retries,
                other=0,
                status_forcelist=RETRY_STATUSES,
                allowed_methods=frozenset({"GET"}),
                backoff_factor=0.5,
                backoff_max=8.0,
                backoff_jitter=0.25,
                raise_on_status=False,
                respect_retry_after_header=True,
            )
            adapter = HTTPAdapter(max_retries=retries)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update(self._headers())
            self._local.session = session
        return session

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

    def get(self, path: str, params: Mapping[str, Any], *, table: str, admin: bool = False) -> Any:
        """GET ``path`` (already encoded) with query ``params``; the decoded JSON body, or an APIError.

        ``admin`` requests use the admin key when one is set. A fresh cached answer (200 or 404) is used
        instead of sending anything.
        """
        key, source = self.config.credential(admin)
        query = "&".join(f"{quote(str(k), safe='[]')}={quote(str(v), safe='')}" for k, v in params.items())
        exchange = Exchange(path=path, query=query)
        cache_key = (self.identity(key), path, query)
        start = time.monotonic()
        try:
            cached = self.cache.get(cache_key) if self.cache is not None else None
            if cached is not None:
                exchange.cached = True
                exchange.status, content = cached
                body = self._check(_Answer(exchange.status, content), path, table, source)
            else:
                response = self._send(path, query, key, exchange, table)
                exchange.status = response.status_code
                history = getattr(getattr(response.raw, "retries", None), "history", ())
                exchange.attempts = len(history) + 1
                try:
                    body = self._check(response, path, table, source)
                except NotFoundError:
                    self._remember(cache_key, response)
                    raise
                self._remember(cache_key, response)  # only reached by a 200 that parsed
            if isinstance(body, dict) and isinstance(body.get("data"), list):
                exchange.items = len(body["data"])
            return body
        except APIError as exc:
            exchange.error = self.config.scrub(exc.message.split("; ")[0])
            raise
        finally:
            exchange.seconds = time.monotonic() - start
            if self.on_exchange is not None:
                self.on_exchange(exchange)

    def _remember(self, key: tuple[Any, ...], response: requests.Response) -> None:
        if self.cache is not None and response.status_code in CACHEABLE_STATUSES:
            self.cache.put(key, response.status_code, response.content)

    def identity(self, key: str) -> tuple[str | None, ...]:
        """Everything that changes an answer, the key only as a hash: two registrations with different
        credentials never share cached rows."""
        key_hash = hashlib.sha256(key.encode()).hexdigest()
        return (self.config.base_url, self.config.organization, self.config.project, key_hash)

    def _send(self, path: str, query: str, key: str, exchange: Exchange, table: str) -> requests.Response:
        """One GET through the session, its retries included; requests' errors become ours."""
        session = self._session()
        url = f"{self.config.base_url}{path}?{query}" if query else f"{self.config.base_url}{path}"
        try:
            try:
                timeout = (min(DEFAULT_CONNECT_TIMEOUT, self.config.timeout), self.config.timeout)
                return session.get(url, timeout=timeout, headers={"Authorization": f"Bearer {key}"})
            except requests.ConnectionError as exc:
                # Once retries are spent, requests reports a read timeout as a ConnectionError around it.
                if isinstance(getattr(exc.args[0] if exc.args else None, "reason", None), ReadTimeoutError):
                    raise requests.Timeout(*exc.args) from exc
                raise
        except requests.Timeout as exc:
            exchange.attempts = self.config.max_retries + 1
            raise APITimeoutError(
                f"{table}: GET {path} got no answer within {self.config.timeout:g} s, "
                f"{exchange.attempts} attempt(s); the API may be slow or unreachable: try again, or raise "
                "timeout= in register()",
                path=path,
                table=table,
            ) from exc
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
            raise APIConnectionError(
                f"{table}: GET {path} broke off before the whole answer arrived ({_reason(exc)}); nothing "
                "partial was used: try again",
                path=path,
                table=table,
            ) from exc
        except requests.exceptions.SSLError as exc:
            raise APIConnectionError(
                f"{table}: GET {path}: the TLS certificate of {urlsplit(self.config.base_url).netloc} could not be "
                f"verified ({_reason(exc)}); behind a proxy with its own CA, point REQUESTS_CA_BUNDLE at its "
                "certificate",
                path=path,
                table=table,
            ) from exc
        except requests.RequestException as exc:
            exchange.attempts = self.config.max_retries + 1
            raise APIConnectionError(
                f"{table}: GET {path} could not reach {urlsplit(self.config.base_url).netloc}, "
                f"{exchange.attempts} attempt(s) ({_reason(exc)}); check your network and OPENAI_BASE_URL",
                path=path,
                table=table,
            ) from exc

    def _check(self, answer: _Answer | requests.Response, path: str, table: str, source: str) -> Any:
        status, content = answer.status_code, answer.content
        if status >= 400:
            raise self._status_error(answer, path, table, source)
        try:
            return json.loads(content)
        except ValueError as exc:
            snippet = self.config.scrub(content[:60].decode("utf-8", "replace"))
            raise APIResponseValidationError(
                f"{table}: GET {path} answered {status} with a body that is not JSON "
                f"({getattr(exc, 'msg', exc)}; starts {snippet!r}); check OPENAI_BASE_URL points at the "
                "OpenAI API, or try again",
                path=path,
                table=table,
            ) from None

    def _status_error(self, answer: _Answer | requests.Response, path: str, table: str, source: str) -> APIStatusError:
        status = answer.status_code
        detail, code, kind = _error_envelope(answer.content)
        detail = self.config.scrub(detail)
        cls = status_error_class(status)
        advice = {
            401: f"the key from {source} was rejected: check it is current",
            403: f"the key from {source} may not read it with organization "
            f"{self.config.organization or '(default)'} and project {self.config.project or '(default)'}: "
            "check OPENAI_ORG_ID / OPENAI_PROJECT_ID",
            404: "no such resource: check the id and OPENAI_BASE_URL",
            429: "rate limited: wait and try again, or fetch fewer keys at once",
        }.get(status, "try again later" if status >= 500 or status in (408, 409) else "check the query")
        wait = _Retry().get_retry_after(answer)
        if status == 429 and wait is not None and wait > MAX_RETRY_WAIT:
            advice = (
                f"rate limited: the server asked to wait {wait:g} s, longer than the {MAX_RETRY_WAIT:g} s "
                "this package waits by itself; try again after that"
            )
        elif status in RETRY_STATUSES:
            advice += f" (gave up after {self.config.max_retries + 1} attempt(s))"
        message = f"{table}: GET {path} failed with HTTP {status}"
        if detail:
            message += f": {detail}"
        return cls(f"{message}; {advice}", status_code=status, path=path, table=table, code=code, type=kind)


@dataclass(frozen=True)
class _Answer:
    """A response as the cache keeps it: enough for ``_check`` (a cached answer has no headers)."""

    status_code: int
    content: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


def _where(name: str, key: str, sources: Mapping[str, str], variable: str) -> str:
    origin = f"register({name}=...)" if sources.get(name) == "option" else variable
    return f"{origin} ({mask_key(key)})"


def _reason(exc: BaseException) -> str:
    """The root cause of a requests error in a few words (urllib3 nests it in MaxRetryError.reason)."""
    cause = exc.args[0] if exc.args else exc
    cause = getattr(cause, "reason", None) or cause
    return str(cause).rsplit(": ", 1)[-1] or type(cause).__name__


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


def encode_path(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{name}`` placeholders with values percent-encoded so that nothing (not even ``/``) stays raw."""
    path = template
    for name, value in values.items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    return path


class Pager:
    """Lazy cursor paging of one list endpoint: each ``next_page()`` is one GET.

    Follows ``after = data[-1]["id"]`` while ``has_more`` is true, as the official SDK does, and refuses
    to loop on a broken server: a repeated cursor, ``has_more`` without data, or more than MAX_PAGES pages.
    Unpaged endpoints answer in one page.
    """

    def __init__(
        self,
        client: Client,
        path: str,
        params: Mapping[str, Any],
        *,
        table: str,
        paged: bool = True,
        page_size: int = 100,
        first_page_size: int | None = None,
        admin: bool = False,
    ) -> None:
        self.client = client
        self.admin = admin
        self.path = path
        self.params = dict(params)
        self.table = table
        self.paged = paged
        self.page_size = page_size
        self.first_page_size = first_page_size
        self.done = False
        self.pages = 0
        self._after: str | None = None
        self._seen: set[str] = set()

    def next_page(self) -> list[dict[str, Any]]:
        """Fetch the next page's items; sets ``done`` after the last one."""
        params = dict(self.params)
        if self.paged:
            params["limit"] = self.first_page_size if self.pages == 0 and self.first_page_size else self.page_size
            if self._after is not None:
                params["after"] = self._after
        body = self.client.get(self.path, params, table=self.table, admin=self.admin)
        self.pages += 1
        items = self._items(body)
        if not self.paged:
            self.done = True
            return items
        has_more = body.get("has_more")
        if not isinstance(has_more, bool):
            self._invalid("has no boolean 'has_more'")
        if not has_more:
            self.done = True
        elif not items:
            raise PaginationError(
                f"{self.table}: GET {self.path} said has_more=true but sent no data (page {self.pages}); "
                "the result would be incomplete, so the query stops: try again later",
                path=self.path,
                table=self.table,
            )
        else:
            cursor = items[-1]["id"]
            if cursor in self._seen or self.pages >= MAX_PAGES:
                why = f"repeated the cursor {cursor!r}" if cursor in self._seen else f"passed {MAX_PAGES} pages"
                raise PaginationError(
                    f"{self.table}: GET {self.path} {why} and would page forever; the query stops so as not "
                    "to loop: try again later, or report the server's behaviour",
                    path=self.path,
                    table=self.table,
                )
            self._seen.add(cursor)
            self._after = cursor
        return items

    def _items(self, body: Any) -> list[dict[str, Any]]:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            self._invalid("is not an object with a 'data' list")
        for index, item in enumerate(data):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                self._invalid(f"has an item without a string 'id' at data[{index}]")
        return data

    def _invalid(self, what: str) -> None:
        raise APIResponseValidationError(
            f"{self.table}: the response of GET {self.path} {what}; check OPENAI_BASE_URL points at the "
            "OpenAI API, or try again",
            path=self.path,
            table=self.table,
        )
