"""The request log of one registration, and ``openai_requests``: the log as an SQL table.

Every GET the tables make (or that the cache answers) is kept here, newest last, up to a bound, so a user
can see what a query cost: ``SELECT count(*), sum(ms) FROM openai_requests``. ``DELETE FROM
openai_requests`` empties it (a WHERE clause deletes just the rows it matches). Entries never hold the host or the key.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

import apsw

from .client import Exchange

__all__ = ["LOG_SCHEMA", "LogModule", "RequestLog"]

DEFAULT_LOG_SIZE = 1_000

LOG_SCHEMA = """CREATE TABLE openai_requests(
    seq INTEGER,       -- 1, 2, ... in the order the requests finished
    at REAL,           -- unix time the request started
    method TEXT,
    path TEXT,         -- e.g. /fine_tuning/jobs/ftjob-abc/checkpoints (no host)
    query TEXT,        -- e.g. limit=100&after=ftckpt_xyz
    status INTEGER,    -- HTTP status; NULL when no answer came
    ms REAL,           -- wall time, retries included
    rows INTEGER,      -- items in the page
    attempts INTEGER,  -- 1 + retries
    cached INTEGER,    -- 1 when the response cache answered and nothing was sent
    speculative INTEGER, -- 1 when read ahead for a join, before SQLite asked for that key
    error TEXT         -- what went wrong, or NULL
)"""


class RequestLog:
    """A bounded, thread-safe record of exchanges (worker threads append; SQL reads)."""

    def __init__(self, size: int = DEFAULT_LOG_SIZE) -> None:
        self._entries: deque[tuple[int, Exchange]] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._seq = 0
        self.sent = 0
        self.items = 0

    def record(self, exchange: Exchange) -> None:
        """Add one exchange; counts requests actually sent and items received."""
        with self._lock:
            self._seq += 1
            self._entries.append((self._seq, exchange))
            if not exchange.cached:
                self.sent += 1
            self.items += exchange.items

    def entries(self) -> list[tuple[int, Exchange]]:
        """A snapshot of (sequence number, exchange), oldest first."""
        with self._lock:
            return list(self._entries)

    def remove(self, seq: int) -> None:
        """Forget the entry with sequence number ``seq`` (the running totals stay)."""
        with self._lock:
            self._entries = deque((entry for entry in self._entries if entry[0] != seq), self._entries.maxlen)


class LogModule:
    """apsw module for ``openai_requests``: eponymous-only; supports SELECT and DELETE."""

    def __init__(self, log: RequestLog) -> None:
        self.log = log

    def Connect(self, connection: apsw.Connection, *args: str) -> tuple[str, LogTable]:  # noqa: N802
        """Declare the log's schema."""
        return LOG_SCHEMA, LogTable(self.log)


class LogTable:
    """The log as a table: full scans only (it is small), rowid = sequence number."""

    def __init__(self, log: RequestLog) -> None:
        self.log = log

    def BestIndexObject(self, info: apsw.IndexInfo) -> bool:  # noqa: N802
        """Every query is a scan of at most the log's bound."""
        info.estimatedCost = 1_000.0
        return True

    def Open(self) -> LogCursor:  # noqa: N802
        """A cursor over a snapshot of the log."""
        return LogCursor(self.log)

    def UpdateDeleteRow(self, rowid: int) -> None:  # noqa: N802
        """DELETE removes the entries it matches (rowid = sequence number)."""
        self.log.remove(rowid)

    def UpdateInsertRow(self, rowid: int | None, fields: tuple[Any, ...]) -> None:  # noqa: N802
        """The log is written by the tables only."""
        raise apsw.ReadOnlyError("openai_requests is a log of HTTP requests: only SELECT and DELETE work on it")

    def UpdateChangeRow(self, rowid: int, newrowid: int, fields: tuple[Any, ...]) -> None:  # noqa: N802
        """The log is written by the tables only."""
        self.UpdateInsertRow(rowid, fields)

    def Disconnect(self) -> None:  # noqa: N802
        """Nothing to release."""


class LogCursor:
    """Walks a snapshot taken at Filter time, so rows do not shift under a running query."""

    def __init__(self, log: RequestLog) -> None:
        self.log = log
        self._rows: list[tuple[int, Exchange]] = []
        self._pos = 0

    def Filter(self, indexnum: int, indexname: str, constraintargs: Sequence[Any]) -> None:  # noqa: N802
        """Start a scan."""
        self._rows = self.log.entries()
        self._pos = 0

    def Eof(self) -> bool:  # noqa: N802
        """True past the last entry."""
        return self._pos >= len(self._rows)

    def Next(self) -> None:  # noqa: N802
        """Move on."""
        self._pos += 1

    def Rowid(self) -> int:  # noqa: N802
        """The entry's sequence number."""
        return self._rows[self._pos][0]

    def Column(self, number: int) -> Any:  # noqa: N802
        """A field of the current entry."""
        seq, e = self._rows[self._pos]
        if number < 0:
            return seq
        return (
            seq,
            e.started,
            e.method,
            e.path,
            e.query,
            e.status,
            round(e.seconds * 1000, 3),
            e.items,
            e.attempts,
            int(e.cached),
            int(e.speculative),
            e.error,
        )[number]

    def Close(self) -> None:  # noqa: N802
        """Drop the snapshot."""
        self._rows = []
