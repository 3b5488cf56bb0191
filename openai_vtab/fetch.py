"""Streams the items of many keys' pages, fetching first pages concurrently and later pages lazily.

Knows neither SQLite nor URLs: it is handed one ``Pager`` per key. Every page is fetched on a worker
thread so that the caller's thread stays free to notice an interrupt (``poll`` runs every 100 ms while it
waits) and never blocks on a socket it cannot abandon.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from .client import Pager
from .errors import NotFoundError
from .rows import Row

__all__ = ["RowStream", "Source", "fetch_rows"]

POLL_SECONDS = 0.1


@dataclass
class Source:
    """The pages of one key combination: ``key`` travels with every row it yields. ``first`` is its first page's
    rows when they were already asked for (read ahead for a join): the stream waits for that, not a new request.
    """

    key: tuple[Any, ...]
    pager: Pager
    first: Future[list[Row]] | None = None


class RowStream:
    """Yields the rows of one page at a time, each page turned into rows by ``to_rows`` on the worker.

    Up to ``window`` sources have their first page in flight at once, which is what makes an
    ``IN (...)`` list of keys cost about ``ceil(keys / window)`` round trips. A source's later pages are
    fetched only when its previous page is used up, so a LIMIT that stops early saves the rest.
    ``on_not_found(source, error)`` decides what a 404 on a source's first page means (the stream skips the
    source if it returns); a 404 on a later page always fails the stream.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        executor: Executor,
        *,
        window: int,
        poll: Callable[[], None],
        on_not_found: Callable[[Source, NotFoundError], None],
        to_rows: Callable[[Source, list[dict[str, Any]]], list[Row]],
    ) -> None:
        self._waiting = deque(sources)
        self._to_rows = to_rows
        self._executor = executor
        self._window = max(1, window)
        self._poll = poll
        self._on_not_found = on_not_found
        self._in_flight: deque[tuple[Source, Future[list[Row]]]] = deque()
        self._current: Source | None = None

    def next_batch(self) -> list[Row] | None:
        """The rows of the next non-empty page, or None when every source is exhausted."""
        while True:
            current = self._current
            if current is not None and not current.pager.done:
                future = self._executor.submit(self._fetch, current)
            else:
                self._top_up()
                if not self._in_flight:
                    return None
                current, future = self._in_flight.popleft()
                self._current = current
                self._top_up()
            try:
                rows = self._wait(future)
            except NotFoundError as error:
                if current.pager.pages:
                    raise  # a later page vanished: the rows so far are not the whole answer
                current.pager.done = True
                self._on_not_found(current, error)
                continue
            if rows:
                return rows

    def close(self) -> None:
        """Abandon what is still queued; a request already on the wire finishes and is discarded."""
        for _, future in self._in_flight:
            future.cancel()
        self._in_flight.clear()
        self._waiting.clear()
        self._current = None

    def _top_up(self) -> None:
        while self._waiting and len(self._in_flight) < self._window:
            source = self._waiting.popleft()
            future, source.first = source.first or self._executor.submit(self._fetch, source), None
            self._in_flight.append((source, future))

    def _fetch(self, source: Source) -> list[Row]:
        return fetch_rows(source, self._to_rows)

    def _wait(self, future: Future[list[Row]]) -> list[Row]:
        while True:
            try:
                return future.result(timeout=POLL_SECONDS)
            except FutureTimeout:
                try:
                    self._poll()
                except BaseException:
                    future.cancel()
                    self.close()
                    raise


def fetch_rows(source: Source, to_rows: Callable[[Source, list[dict[str, Any]]], list[Row]]) -> list[Row]:
    """The rows of ``source``'s next page. Runs on a worker: turning items into rows there keeps the SQLite
    thread's per-row work minimal."""
    return to_rows(source, source.pager.next_page())
