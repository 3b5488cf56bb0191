"""What the tables of one ``register()`` call share: settings, the HTTP client, the request log, the worker
pool, the wait hooks, and the interrupt check. Knows no table and no query plan.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import apsw

from .client import Client
from .log import RequestLog

__all__ = ["Registration"]


class Registration:
    """What the tables of one ``register()`` call share: settings, HTTP client, request log, worker pool, hooks.

    ``register()`` returns it. ``on_wait`` callbacks run about every 100 ms while a query waits for the
    network (the shell draws progress there); raising from one aborts the query.
    """

    def __init__(self, connection: apsw.Connection, client: Client, log: RequestLog, *, max_workers: int) -> None:
        self.client = client
        self.config = client.config
        self.log = log
        self.max_workers = max_workers
        self.on_wait: list[Callable[[], None]] = []
        # Per table, the scans that received a single key (a join's inner loop) rather than an IN set: the
        # shell reads it to suggest the concurrent IN form when a statement fetched many keys one by one.
        self.single_key_scans: Counter[str] = Counter()
        self._connection = weakref.ref(connection)
        self._executor: ThreadPoolExecutor | None = None
        self._abandoned = threading.Event()

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The worker pool, started on first use so that ``register()`` costs nothing."""
        if self._executor is None:
            self._abandoned = threading.Event()
            self._executor = ThreadPoolExecutor(
                self.max_workers,
                thread_name_prefix="openai-vtab",
                initializer=self.client.start_worker,
                initargs=(self._abandoned,),
            )
        return self._executor

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

    def poll(self) -> None:
        """Stop the query if the connection was interrupted (Ctrl-C in the shell); run the wait hooks."""
        connection = self._connection()
        if connection is not None and connection.is_interrupted:
            self.abandon()
            raise apsw.InterruptError("interrupted while waiting for the OpenAI API")
        for hook in self.on_wait:
            hook()
