"""Query the OpenAI API with SQL: apsw virtual tables over its list endpoints.

>>> import apsw, openai_vtab
>>> db = apsw.Connection("experiments.db")
>>> with openai_vtab.register(db):  # doctest: +SKIP
...     db.execute("SELECT step_number, full_valid_loss FROM job_checkpoints('ftjob-abc123')").fetchall()
"""

from __future__ import annotations

import sqlite3

import apsw

from ._version import __version__
from .archiving import ArchiveReport, archive
from .cache import DEFAULT_CACHE_TTL, ResponseCache
from .client import Client
from .config import Config
from .errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    GoneWarning,
    InternalServerError,
    InvalidKeyError,
    MissingAPIKeyError,
    MissingRequiredKeyError,
    NotFoundError,
    OpenAIVTabError,
    OpenAIVTabWarning,
    PaginationError,
    PartialWriteError,
    PermissionDeniedError,
    RateLimitError,
    RegistrationClosedError,
    TableNameClashWarning,
    UnknownKeyWarning,
    UnprocessableEntityError,
    WriteRefusedError,
    warn,
)
from .log import LogModule, RequestLog
from .registration import Registration
from .tables import TABLES, Table
from .vtab import TableModule
from .writes import WriteGuard

__all__ = [
    "TABLES",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "ArchiveReport",
    "AuthenticationError",
    "BadRequestError",
    "Config",
    "ConfigurationError",
    "ConflictError",
    "GoneWarning",
    "InternalServerError",
    "InvalidKeyError",
    "MissingAPIKeyError",
    "MissingRequiredKeyError",
    "NotFoundError",
    "OpenAIVTabError",
    "OpenAIVTabWarning",
    "PaginationError",
    "PartialWriteError",
    "PermissionDeniedError",
    "RateLimitError",
    "Registration",
    "RegistrationClosedError",
    "Table",
    "TableNameClashWarning",
    "UnknownKeyWarning",
    "UnprocessableEntityError",
    "WriteRefusedError",
    "__version__",
    "archive",
    "register",
]

# As the official SDK does: tracebacks and reprs name the public path (openai_vtab.NotFoundError), not the
# private module a class happens to live in, and pickling finds it there too.
for _name in __all__:
    _value = globals().get(_name)
    if isinstance(_value, type) and _value.__module__.startswith(f"{__name__}."):
        _value.__module__ = __name__
del _name, _value

DEFAULT_MAX_WORKERS = 8
# Every table is also registered under this prefix, a name no user table is likely to take.
ALIAS_PREFIX = "openai_"


def register(
    connection: apsw.Connection,
    *,
    api_key: str | None = None,
    admin_api_key: str | None = None,
    base_url: str | None = None,
    organization: str | None = None,
    project: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    max_workers: int = DEFAULT_MAX_WORKERS,
    cache_ttl: float = DEFAULT_CACHE_TTL,
    allow_insecure_http: bool = False,
    allow_writes: bool = False,
) -> Registration:
    """Make every OpenAI table available on ``connection``.

    Options left as None fall back to the environment, as the official SDK reads it: OPENAI_API_KEY,
    OPENAI_ADMIN_KEY (``admin_api_key``, used for admin endpoints such as checkpoint permissions),
    OPENAI_BASE_URL (default ``https://api.openai.com/v1``), OPENAI_ORG_ID (sent as ``OpenAI-Organization``)
    and OPENAI_PROJECT_ID (sent as ``OpenAI-Project``). Nothing is sent and no key is needed until a query
    reads a table. ``timeout`` is in seconds (default 60); ``max_retries`` defaults to 2; ``max_workers``
    bounds the keys of an ``IN (...)`` list fetched at once. ``cache_ttl`` is how many seconds an answer is
    reused (default 300; 0 turns the cache off); ``registration.clear_cache()`` or
    ``SELECT openai_clear_cache()`` forgets it. ``allow_insecure_http`` permits a plain
    ``http://`` base URL to a host other than this machine (the key would travel in clear text).

    ``allow_writes`` lets INSERT, UPDATE and DELETE on the tables that take them call the API (create, cancel,
    pause and resume fine-tuning jobs, share checkpoints, cancel batches, delete files; README: "Changing
    things"). Off by default: every write then fails before anything is sent. Writes from triggers and views are
    always refused, by an authorizer that register() installs in front of the connection's own (setting
    ``connection.authorizer`` afterwards replaces it: set yours first).

    ``connection`` must be an ``apsw.Connection``: the standard library's ``sqlite3`` cannot host Python
    virtual tables.

    The tables are eponymous-only: they write nothing into the database file. Each is also
    available as ``openai_<name>`` (``openai_models``...), for when a table of your own has the same name: yours
    wins, and register() warns (TableNameClashWarning).
    ``openai_requests`` lists the HTTP requests the tables made (``DELETE FROM openai_requests`` empties it).

    Returns the ``Registration``: its ``config`` holds the effective settings and where each came from, its
    ``log`` the requests made. Use it as a context manager (``with openai_vtab.register(db):``), or call its
    ``close()``, to stop the worker threads when done.
    """
    if not isinstance(connection, apsw.Connection):
        raise TypeError(_not_apsw_message(connection))
    if max_workers < 1:
        raise ConfigurationError(f"max_workers must be at least 1, not {max_workers!r}")
    if cache_ttl < 0:
        raise ConfigurationError(f"cache_ttl must be 0 (off) or a number of seconds, not {cache_ttl!r}")
    config = Config.resolve(
        api_key=api_key,
        admin_api_key=admin_api_key,
        base_url=base_url,
        organization=organization,
        project=project,
        timeout=timeout,
        max_retries=max_retries,
        allow_insecure_http=allow_insecure_http,
    )
    log = RequestLog()
    cache = ResponseCache(cache_ttl) if cache_ttl > 0 else None
    client = Client(config, cache=cache, on_exchange=log.record, max_in_flight=max_workers)
    registration = Registration(connection, client, log, max_workers=max_workers, allow_writes=allow_writes)
    connection.create_module("openai_requests", LogModule(log), use_bestindex_object=True, eponymous_only=True)
    connection.create_scalar_function("openai_clear_cache", registration.clear_cache, 0)
    connection.create_scalar_function("openai_last_insert_id", lambda: registration.last_insert_id, 0)
    for table in TABLES:
        module = TableModule(table, registration)
        for name in (table.name, ALIAS_PREFIX + table.name):
            connection.create_module(
                name, module, use_bestindex_object=True, eponymous_only=True, read_only=table.writes is None
            )
    previous = connection.authorizer
    if isinstance(previous, WriteGuard):  # registered again: the new guard replaces the old one
        previous = previous.previous
    names = {name: table for table in TABLES if table.writes for name in (table.name, ALIAS_PREFIX + table.name)}
    connection.authorizer = WriteGuard(names, registration, previous)
    _warn_about_clashes(connection)
    return registration


def _warn_about_clashes(connection: apsw.Connection) -> None:
    """A user's own table silently wins over an eponymous table of the same name: say so, and how to reach ours."""
    aliased = {table.name for table in TABLES}
    names = aliased | {"openai_requests"}
    for schema in [row[1] for row in connection.execute("PRAGMA database_list")]:
        quoted = schema.replace('"', '""')
        for (name,) in connection.execute(
            f"SELECT name FROM \"{quoted}\".sqlite_schema WHERE type IN ('table', 'view')"
        ):
            if name in names:
                warn(
                    TableNameClashWarning(
                        f"your {schema}.{name} hides openai_vtab's {name} table: queries of {name} read yours; "
                        + (f"use {ALIAS_PREFIX}{name} for ours" if name in aliased else "rename yours to reach ours")
                    )
                )


def _not_apsw_message(connection: object) -> str:
    kind = type(connection)
    given = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    message = f"openai_vtab.register() needs an apsw.Connection, not a {given}"
    if isinstance(connection, sqlite3.Connection):
        # The usual mix-up; a sqlite3 connection cannot be converted, but the same file can be opened with apsw.
        return (
            f"{message}: Python's sqlite3 module cannot run virtual tables written in Python. Open the same "
            'database with apsw instead, db = apsw.Connection("experiments.db"): apsw comes with openai-vtab and '
            "reads and writes the same files"
        )
    return f"{message}: open the database with apsw.Connection(path) and pass that"
