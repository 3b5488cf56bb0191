"""Exceptions and warnings raised by openai_vtab.

Every message stands alone, because the shell prints only ``str(error)``: it names what failed, for which
table and key, and what to do about it. No message ever contains the API key.

The names mirror the official ``openai`` SDK so that code catching one catches the other's equivalent::

    OpenAIVTabError
    ├── ConfigurationError              bad or missing settings; raised before any request is sent
    │   └── MissingAPIKeyError          no key from register(api_key=...) or OPENAI_API_KEY
    ├── RegistrationClosedError         a query reached the tables of a closed registration
    ├── MissingRequiredKeyError         a query cannot supply a table's required key column
    ├── InvalidKeyError                 a key value that can never be an id (a number, a blob)
    ├── WriteRefusedError               an INSERT, UPDATE or DELETE refused before anything was sent
    ├── PartialWriteError               a write failed after changing some objects (names them all)
    └── APIError                        anything that went wrong talking to the API
        ├── APIConnectionError          could not connect, or the connection broke
        │   └── APITimeoutError         no answer within the timeout
        ├── APIResponseValidationError  a 200 whose body is not the JSON the endpoint promises
        ├── PaginationError             the server never stops paging
        └── APIStatusError              the API answered with an HTTP error status
            ├── BadRequestError             400
            ├── AuthenticationError         401
            ├── PermissionDeniedError       403
            ├── NotFoundError               404
            ├── ConflictError               409
            ├── UnprocessableEntityError    422
            ├── RateLimitError              429
            └── InternalServerError         5xx

    UserWarning
    └── OpenAIVTabWarning
        ├── UnknownKeyWarning           a key the API does not know (HTTP 404): the query goes on with no rows
        └── TableNameClashWarning       a table of yours has the name of one of ours, and hides it

Warnings are issued with ``warn()``, which points them at the caller's own line rather than ours.
"""

from __future__ import annotations

import os
import sys
import warnings

import apsw

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
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
    "RegistrationClosedError",
    "TableNameClashWarning",
    "UnknownKeyWarning",
    "UnprocessableEntityError",
    "WriteRefusedError",
    "one_line",
    "status_error_class",
    "warn",
]


class OpenAIVTabError(Exception):
    """Base class of every exception openai_vtab raises on purpose."""


class ConfigurationError(OpenAIVTabError):
    """The settings cannot work (for example a plain-http base URL to a remote host); nothing was sent."""


class MissingAPIKeyError(ConfigurationError):
    """A query needs the API but no key was given to ``register()`` or set in OPENAI_API_KEY."""


class RegistrationClosedError(OpenAIVTabError):
    """A query reached a table of a registration that was closed (``close()``, or the end of its ``with`` block)."""


class MissingRequiredKeyError(OpenAIVTabError):
    """The query gives SQLite no way to pass a required key column (such as a job id) to the table."""


class InvalidKeyError(OpenAIVTabError):
    """A key value has a type no id can have (an integer, a real, a blob)."""


class WriteRefusedError(OpenAIVTabError):
    """An INSERT, UPDATE or DELETE the tables refuse before sending anything: writes are off (the default), the
    table does not take that write, or a trigger or view tried to write."""


class PartialWriteError(OpenAIVTabError):
    """A write statement failed after some of its API calls succeeded; SQLite cannot undo those.

    ``changed`` are the ids changed (or created) before the failure, ``unchanged`` those the statement matched
    but did not change (the failing one first; inside BEGIN ... COMMIT only the failing one, since the others
    cannot be told for certain from rows read earlier), ``unknown`` the failing one instead when its call may
    have worked (an attempt reached the server without a clear answer), ``error`` the failure itself (also
    ``__cause__``). ``outcome_unknown`` is true when the failing row's call may have worked.

    An INSERT's rows that were not created have no ids, so for an INSERT ``unchanged`` and ``unknown`` are empty
    and ``failed_row`` is the statement's row (1 for its first) whose create failed; no row after it was sent.
    ``failed_row`` is None for UPDATE and DELETE.
    """

    def __init__(
        self,
        message: str,
        *,
        changed: list[str],
        unchanged: list[str],
        error: BaseException,
        unknown: list[str] | None = None,
        failed_row: int | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.changed = changed
        self.unchanged = unchanged
        self.unknown = unknown or []
        self.error = error
        self.failed_row = failed_row
        self.outcome_unknown = outcome_unknown


class APIError(OpenAIVTabError):
    """Something went wrong talking to the OpenAI API.

    ``path`` is the request path (no host, no key); ``table`` the SQL table that asked, when known.
    ``earlier_attempt_reached`` is true when an earlier attempt of the same write reached the server and got no
    clear answer (a 5xx, a 408, a broken connection): that attempt may have done what this one failed to do.
    ``outcome_unknown`` is true when a create, which is never sent again, reached the server without a clear
    answer: the object may exist, and the message says how to check.
    """

    def __init__(self, message: str, *, path: str | None = None, table: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.table = table
        self.earlier_attempt_reached = False
        self.outcome_unknown = False


class APIConnectionError(APIError):
    """The connection could not be made or broke before a full answer arrived."""


class APITimeoutError(APIConnectionError):
    """The server did not answer within the configured timeout."""


class APIResponseValidationError(APIError):
    """The server answered 200 with a body that is not the JSON the endpoint promises."""


class PaginationError(APIError):
    """The server keeps paging forever: a repeated cursor, ``has_more`` with no data, or too many pages."""


class APIStatusError(APIError):
    """The API answered with an HTTP error status.

    ``status_code`` is the HTTP status; ``code`` and ``type`` come from the API's error envelope when present.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        path: str | None = None,
        table: str | None = None,
        code: str | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message, path=path, table=table)
        self.status_code = status_code
        self.code = code
        self.type = type


class BadRequestError(APIStatusError):
    """HTTP 400: the API rejected the request's parameters."""


class AuthenticationError(APIStatusError):
    """HTTP 401: the API key was rejected."""


class PermissionDeniedError(APIStatusError):
    """HTTP 403: the key may not read this resource with the organization or project in use."""


class NotFoundError(APIStatusError):
    """HTTP 404 on a route where it means an error rather than an unknown key."""


class ConflictError(APIStatusError):
    """HTTP 409: the resource is in a conflicting state (retried before it is raised)."""


class UnprocessableEntityError(APIStatusError):
    """HTTP 422: the request was well formed but could not be processed."""


class RateLimitError(APIStatusError):
    """HTTP 429: too many requests, after retries or with a wait longer than the retry cap."""


class InternalServerError(APIStatusError):
    """HTTP 5xx: the API failed (retried before it is raised)."""


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    """The exception class for an HTTP error status, as the official SDK maps them."""
    if status >= 500:
        return InternalServerError
    return _STATUS_ERRORS.get(status, APIStatusError)


class OpenAIVTabWarning(UserWarning):
    """Base class of the warnings openai_vtab issues."""


class UnknownKeyWarning(OpenAIVTabWarning):
    """The API does not know a key (HTTP 404): that key contributes no rows and the query goes on."""


class GoneWarning(UnknownKeyWarning):
    """The API knows the key, but what its rows are read from is gone (a job's deleted result file, HTTP 404):
    that key contributes no rows and the query goes on."""


class TableNameClashWarning(OpenAIVTabWarning):
    """A table or view of yours has the name of one of ours; SQLite reads yours, ``openai_<name>`` reaches ours."""


_PACKAGE_DIRECTORY = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(warning: Warning) -> None:
    """Issue ``warning`` as if from the first caller outside this package: the user's statement, not our line.

    A fixed ``stacklevel`` is wrong as soon as the call path changes (SQLite calls into the tables from the
    user's ``execute``; the shell calls ``register()`` for the user). ``skip_file_prefixes`` does this walk, but
    only from Python 3.12 on.
    """
    frame = sys._getframe(1)
    level = 2
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIRECTORY):
        frame = frame.f_back
        level += 1
    warnings.warn(warning, stacklevel=level)


def one_line(error: BaseException | str) -> str:
    """An error's message on one line (the shell prints one line per error), without the class name apsw before
    3.47 puts in front of its own (``BusyError: database is locked``)."""
    text = " ".join(str(error).split())
    prefix = f"{type(error).__name__}: "
    if isinstance(error, apsw.Error) and text.startswith(prefix):
        text = text[len(prefix) :]
    return text or type(error).__name__
