"""Settings of one registration, read as the official SDK reads them, and the keys they hold.

A key lives in exactly two places: a ``Config`` field kept out of ``repr``, and a ``Credential`` that puts it
in the Authorization header of a request. Everything a user can see shows it masked (``sk-...wxyz``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests

from .errors import ConfigurationError, MissingAPIKeyError

__all__ = ["DEFAULT_BASE_URL", "Config", "Credential", "Setting", "mask_key"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 2
BASE_URL_WAYS = "OPENAI_BASE_URL, base_url= in Python, --base-url in the shell"


def mask_key(key: str | None) -> str:
    """A key shown safely: its prefix and last four characters (``sk-...wxyz``), never more."""
    if not key:
        return "(not set)"
    prefix = "sk-" if key.startswith("sk-") else ""
    return f"{prefix}...{key[-4:]}" if len(key) >= 12 else f"{prefix}..."


def is_loopback(host: str) -> bool:
    """True for this machine: localhost, 127.0.0.0/8, ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _number(value: Any, kind: type, name: str) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be a number, not {value!r}") from None


def _text(value: Any) -> Any:
    # A key pasted from a file often carries its line ending (or a Windows \r): it is never part of the key.
    return value.strip() if isinstance(value, str) else value


class Setting(NamedTuple):
    """One row of ``Config.describe()``: a setting's name, its value as shown (keys masked), and its source."""

    name: str
    value: str
    source: str


class Credential(requests.auth.AuthBase):
    """A key as requests use it: sets the bearer header, and otherwise shows only where it came from.

    ``source`` names its origin with the key masked (``OPENAI_API_KEY (sk-...wxyz)``), for error messages;
    ``identity`` is a hash of it, for cache keys.
    """

    __slots__ = ("_key", "identity", "source")

    def __init__(self, key: str, source: str) -> None:
        self._key = key
        self.source = source
        self.identity = hashlib.sha256(key.encode()).hexdigest()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._key}"
        return request

    def __repr__(self) -> str:
        return f"Credential({self.source})"


@dataclass(frozen=True)
class Config:
    """Effective settings of one ``register()`` call, and where each came from.

    ``sources`` maps a setting name to ``"option"``, the environment variable it was read from, or
    ``"default"``. The keys are kept out of ``repr`` so that a printed config can never leak them.
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
            api_key=_text(pick("api_key", api_key, "OPENAI_API_KEY", None)),
            admin_api_key=_text(pick("admin_api_key", admin_api_key, "OPENAI_ADMIN_KEY", None)),
            base_url=_text(pick("base_url", base_url, "OPENAI_BASE_URL", DEFAULT_BASE_URL)).rstrip("/"),
            organization=_text(pick("organization", organization, "OPENAI_ORG_ID", None)),
            project=_text(pick("project", project, "OPENAI_PROJECT_ID", None)),
            timeout=_number(pick("timeout", timeout, None, DEFAULT_TIMEOUT), float, "timeout"),
            max_retries=_number(pick("max_retries", max_retries, None, DEFAULT_MAX_RETRIES), int, "max_retries"),
            allow_insecure_http=allow_insecure_http,
            sources=sources,
        )
        config.check()
        return config

    def check(self) -> None:
        """Reject settings that cannot work, before anything is sent.

        A plain-http base URL to a remote host is a working URL, so it is refused later, when a table is read
        (``credential()``): ``SELECT 1`` still runs.
        """
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"base URL {self.base_url!r}{self._from('base_url')} is not an http(s) URL: set it to something "
                f"like {DEFAULT_BASE_URL} ({BASE_URL_WAYS})"
            )
        for name in ("api_key", "admin_api_key", "organization", "project"):
            value = getattr(self, name)
            # These travel in HTTP headers, where a control character is refused by requests with an error
            # that quotes the whole header (the key included), and non-Latin-1 text cannot be sent at all.
            if value is not None and (not value.isprintable() or not value.isascii()):
                shown = mask_key(value) if name.endswith("api_key") else repr(value)
                raise ConfigurationError(
                    f"{name} ({shown}, from {self.sources.get(name, 'default')}) holds characters an HTTP header "
                    "cannot carry (control characters or non-ASCII text): check how it was set"
                )
        if self.timeout <= 0:
            raise ConfigurationError(f"timeout must be a positive number of seconds, not {self.timeout!r}")
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more, not {self.max_retries!r}")

    @property
    def loopback(self) -> bool:
        """True when the base URL points at this machine."""
        return is_loopback(urlsplit(self.base_url).hostname or "")

    @property
    def host(self) -> str:
        """host:port of the base URL, for messages."""
        return urlsplit(self.base_url).netloc

    def credential(self, admin: bool = False, *, table: str | None = None) -> Credential:
        """The key for a request to ``table``: the admin key for admin endpoints when one is set, else the normal key.

        Raises a ConfigurationError instead when there is no key, or when the base URL would carry it in clear text.
        """
        where = f"{table}: " if table else ""
        if admin and self.admin_api_key:
            credential = Credential(self.admin_api_key, self.key_source(admin=True))
        elif self.api_key:
            credential = Credential(self.api_key, self.key_source(admin=admin))
        else:
            raise MissingAPIKeyError(
                f"{where}no OpenAI API key: set the OPENAI_API_KEY environment variable"
                + (" (or OPENAI_ADMIN_KEY for this admin endpoint)" if admin else "")
                + ", or pass api_key= to openai_vtab.register() (or run the shell with --demo to try it on sample data)"
            )
        if urlsplit(self.base_url).scheme == "http" and not self.loopback and not self.allow_insecure_http:
            raise ConfigurationError(
                f"{where}base URL {self.base_url!r}{self._from('base_url')} is plain http to a remote host, which "
                f"would send the API key in clear text, so nothing was sent: use https ({BASE_URL_WAYS}), or pass "
                "allow_insecure_http=True to register() if you really mean it (the shell never allows it)"
            )
        return credential

    def key_source(self, admin: bool = False) -> str:
        """Where the key for a request comes from, masked: ``OPENAI_API_KEY (sk-...wxyz)``, or ``(not set)``."""
        if admin and self.admin_api_key:
            return self._origin("admin_api_key", "OPENAI_ADMIN_KEY")
        if not self.api_key:
            return "(not set)"
        source = self._origin("api_key", "OPENAI_API_KEY")
        if admin:
            source = f"{source[:-1]}; admin endpoints use OPENAI_ADMIN_KEY or register(admin_api_key=...) when set)"
        return source

    def _origin(self, name: str, variable: str) -> str:
        key = getattr(self, name)
        origin = f"register({name}=...)" if self.sources.get(name) == "option" else variable
        return f"{origin} ({mask_key(key)})"

    def _from(self, name: str) -> str:
        # Only an environment variable is worth naming: an option is what the user just typed.
        source = self.sources.get(name, "default")
        return f" (from {source})" if source not in ("option", "default") else ""

    def scrub(self, text: str) -> str:
        """Server text with any of our keys masked: some servers echo a rejected key in their message."""
        for key in (self.api_key, self.admin_api_key):
            if key and key in text:
                text = text.replace(key, mask_key(key))
        return text

    def describe(self) -> list[Setting]:
        """One ``Setting(name, value, source)`` per setting of the HTTP requests, the keys masked.

        ``source`` is ``"option"`` (a ``register()`` keyword or a shell option), the environment variable the
        value came from, or ``"default"``. This is what the shell's ``.openai`` prints.
        """
        values = {
            "api_key": mask_key(self.api_key),
            "admin_api_key": mask_key(self.admin_api_key),
            "base_url": self.base_url,
            "organization": self.organization or "(not set)",
            "project": self.project or "(not set)",
            "timeout": f"{self.timeout:g} s",
            "max_retries": str(self.max_retries),
        }
        return [Setting(name, value, self.sources.get(name, "default")) for name, value in values.items()]
