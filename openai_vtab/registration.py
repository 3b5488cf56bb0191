"""What the tables of one ``register()`` call share: settings, the HTTP client, the request log, the worker
pool, the wait hooks, and the interrupt check; and closing it all. Knows no table and no query plan.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

import apsw

from .client import Client
from .errors import RegistrationClosedError
from .log import RequestLog
from .readahead import SpeculationPool

__all__ = ["Registration"]

T = TypeVar("T")

CLOSED_MESSAGE = (
    "the OpenAI tables of this connection were closed (Registration.close(), or the end of its with block), "
    "so nothing is fetched: call openai_vtab.register(connection) again to query them"
)


class _WorkerPool(ThreadPoolExecutor):
    """The worker pool; once its registration is closed, ``submit`` refuses with advice.

    This is the one place that refuses: a query after ``close()`` gets a fresh pool that starts no thread, and a
    scan that began before ``close()`` asks its old pool for the next page, which would otherwise answer with
    the executor's "cannot schedule new futures after shutdown".
    """

    def __init__(self, closed: threading.Event, **options: Any) -> None:
        super().__init__(**options)
        self._registration_closed = closed

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn`` on a worker, or raise RegistrationClosedError after ``close()``."""
        if self._registration_closed.is_set():
            raise RegistrationClosedError(CLOSED_MESSAGE)
        return super().submit(fn, *args, **kwargs)


class Registration:
    """What ``register()`` returns: the tables of one connection and what they share.

    Public attributes: ``config``, the effective settings (a ``Config``: ``config.describe()`` lists them with
    their sources, keys masked); ``log``, the request log behind the ``openai_requests`` table (``log.sent``
    requests sent, ``log.items`` rows received, ``log.entries()``); ``max_workers``, the keys fetched at once;
    ``on_wait``, callbacks run about every 100 ms while a query waits for the network (the shell draws progress
    there; raising from one aborts the query). ``allow_writes``: whether INSERT, UPDATE and DELETE may call the
    API; ``on_change``, callbacks given one line per object a write changed (the shell prints them);
    ``last_insert_id``, the id of the object the last INSERT created. ``client`` and ``single_key_scans`` serve
    the package's own shell, ``cursors`` (the open cursors of its tables) and ``speculation`` its read-ahead for
    joins.

    It is a context manager: ``with openai_vtab.register(db) as registration:`` closes it at the end of the
    block (see ``close()``). The worker threads start with the first query that fetches, not before.
    """

    def __init__(
        self,
        connection: apsw.Connection,
        client: Client,
        log: RequestLog,
        *,
        max_workers: int,
        allow_writes: bool = False,
    ) -> None:
        self.client = client
        self.config = client.config
        self.log = log
        self.max_workers = max_workers
        self.allow_writes = allow_writes
        self.on_wait: list[Callable[[], None]] = []
        self.on_change: list[Callable[[str], None]] = []
        # The id of the object the last INSERT created (SELECT openai_last_insert_id()).
        self.last_insert_id: str | None = None
        # Per table, the scans that received a single key (a join's inner loop) rather than an IN set: the
        # shell reads it to suggest the concurrent IN form when a statement fetched many keys one by one.
        self.single_key_scans: Counter[str] = Counter()
        # The open cursors of this registration's tables: read-ahead looks here for a join's outer cursor.
        self.cursors: weakref.WeakSet[Any] = weakref.WeakSet()
        self._speculation: SpeculationPool | None = None
        self._connection = weakref.ref(connection)
        self._executor: ThreadPoolExecutor | None = None
        self._abandoned = threading.Event()
        self._closed = threading.Event()

    @property
    def closed(self) -> bool:
        """True once ``close()`` has run."""
        return self._closed.is_set()

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The worker pool, started on first use so that ``register()`` costs nothing.

        After ``close()`` its ``submit`` raises RegistrationClosedError: a query then fails with advice instead
        of quietly starting threads again.
        """
        if self._executor is None:
            self._abandoned = threading.Event()
            self._executor = _WorkerPool(
                self._closed,
                max_workers=self.max_workers,
                thread_name_prefix="openai-vtab",
                initializer=self.client.start_worker,
                initargs=(self._abandoned,),
            )
        return self._executor

    @property
    def speculation(self) -> SpeculationPool | None:
        """The daemon threads that fetch keys read ahead for joins (readahead.py); None once closed."""
        if self._closed.is_set():
            return None
        if self._speculation is None:
            self._speculation = SpeculationPool(self.max_workers, self._prepare_speculation)
        return self._speculation

    def _prepare_speculation(self) -> None:
        # Read per task, not per thread: abandon() replaces the event, and these threads outlive it.
        self.client.start_worker(self._abandoned, speculative=True)

    def close(self) -> None:
        """Stop the worker threads and drop the cached answers; calling it again does nothing.

        Queued fetches are dropped and retry waits end at once; a request already on the wire is waited for
        (at most its timeout), so no worker thread of this registration outlives the call. A request read ahead
        for a join is not waited for: its daemon thread ends on its own, within the request's timeout, and
        never holds up the end of the process. The connection stays open and the request log readable, but a
        query that reads an OpenAI table raises RegistrationClosedError; ``register()`` the connection again to
        query them. A thread left behind by an earlier interrupt ends on its own, within its request's timeout.
        """
        if self._closed.is_set():
            return
        self._closed.set()
        if self._speculation is not None:
            self._speculation.stop()  # not waited for: a guess still on the wire ends within its timeout
        executor, self._executor = self._executor, None
        if executor is not None:
            self._abandoned.set()
            executor.shutdown(wait=True, cancel_futures=True)
        self.clear_cache()

    def __enter__(self) -> Registration:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return (
            f"<openai_vtab.Registration{state} base_url={self.config.base_url!r} "
            f"api_key={self.config.key_source()} max_workers={self.max_workers} requests_sent={self.log.sent}>"
        )

    def abandon(self) -> None:
        """Give up on every request in flight (after an interrupt, or when the connection closes).

        Queued fetches are cancelled and retry sleeps cut short; a request already on the wire ends within
        its timeout, on a pool the next query no longer waits for.
        """
        if self._executor is not None:
            self._abandoned.set()
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def clear_cache(self) -> int:
        """Forget every cached response; returns how many there were (also ``SELECT openai_clear_cache()``)."""
        cache = self.client.cache
        if cache is None:
            return 0
        entries, _ = cache.size
        cache.clear()
        return entries

    def total_changes(self) -> int:
        """The connection's ``total_changes()``: it moves only when a statement ends, so a new value means a new one."""
        connection = self._connection()
        return connection.total_changes() if connection is not None else 0

    def read_only(self) -> bool:
        """Whether the connection's main database was opened read-only: SQLite then refuses every write, ours too."""
        connection = self._connection()
        return connection is not None and connection.readonly("main")

    def poll(self) -> None:
        """Stop the query if the connection was interrupted (Ctrl-C in the shell); run the wait hooks."""
        connection = self._connection()
        if connection is not None and connection.is_interrupted:
            self.abandon()
            raise apsw.InterruptError("interrupted while waiting for the OpenAI API")
        for hook in self.on_wait:
            hook()
