"""Read-ahead for joins between this package's own tables.

SQLite runs a join as nested loops and hands the inner table one key per outer row. When the outer table is
one of ours (``fine_tuning_jobs j JOIN job_checkpoints c ON c.fine_tuning_job_id = j.id``), its cursor holds the
rows that come next, so the inner table can start fetching their keys before SQLite asks for them. SQLite never
says where a key came from: the link is found by value, a live cursor of the same registration whose current
row holds the key in some column (``find_leader``). The same column of that cursor's next rows is the guess.

The rules that keep speculation invisible in the answers:

* A key fetched ahead is used only when SQLite asks for it, through the very request already sent (never a
  second one); its failure surfaces only then, exactly as a normal fetch would raise it.
* Each outer cursor (``Leader``) owns the guesses made from its rows and drops them when it re-filters or
  closes. Nothing waits for a guess still on the wire: a hung request finishes, or times out, on its own.
* Waste is bounded per statement: the guesses still open plus the ones SQLite passed by (``misses``) never
  exceed ``max_workers``, counted over every outer cursor of the statement (a ``Budget`` they share, so a chain
  of three tables wastes no more than a join of two); once the misses spend it, the join goes on one key at a
  time. A guess cancelled before its request left costs nothing.
* An inner cursor guesses ``max_workers`` keys ahead from the first key it is asked for. A window that starts
  small and grows as keys are asked for wastes less under a LIMIT (within the same bound), but it costs every
  full join a round trip or two: 1.3x the time of the IN form instead of 1.0x (benchmarks/run.py, 16 keys).
* Guesses run on their own daemon threads (``SpeculationPool``): a hung one never takes a worker from a key
  SQLite asked for, nor holds up the end of the process. A guess still queued when its key is asked for is
  cancelled, and the key fetched the normal way.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from .fetch import Source
from .rows import Row

__all__ = ["Budget", "Follower", "Leader", "LeaderCursor", "SpeculationPool", "find_leader", "shared_budget"]


class LeaderCursor(Protocol):
    """What read-ahead needs of an outer cursor."""

    ahead: Leader

    def current(self) -> tuple[int, Row] | None:
        """(row number, row) of the row SQLite is on, or None."""

    def upcoming(self, count: int) -> list[tuple[int, Row]]:
        """(row number, row) of up to ``count`` rows after the current one that are already at hand."""


class Budget:
    """The keys one statement may fetch ahead and never use, shared by the outer cursors open at the same time.

    SQLite opens every cursor of a statement before its first row and closes them when it ends (a correlated
    subquery's cursors too, not once per outer row), so the cursors open together are one statement's. A
    statement run inside another (a user function that queries) shares its caller's budget: the bound then
    holds for both together, which is stricter, never looser. The first cursor opened when none is open starts
    a new budget (``shared_budget``).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.misses = 0  # guesses whose request left and that SQLite never asked for
        self.open = 0  # guesses not yet asked for: each could still become a miss

    def allows_one_more(self) -> bool:
        """Whether one more guess keeps the bound (every open guess could still be a miss)."""
        return self.misses + self.open < self.size


def shared_budget(cursors: Iterable[LeaderCursor], size: int) -> Budget:
    """The budget of the cursors open now (the statement's), or a new one of ``size`` when none is open."""
    for cursor in cursors:
        return cursor.ahead.budget
    return Budget(size)


@dataclass
class _Guess:
    """A key's first page fetched ahead, predicted from the outer cursor's row ``row``."""

    source: Source
    future: Future[list[Row]]
    row: int


def find_leader(cursors: Iterable[LeaderCursor], follower: object, value: Any) -> tuple[LeaderCursor, int] | None:
    """The live cursor (other than ``follower``) whose current row holds ``value``, and that column's index."""
    for cursor in cursors:
        if cursor is follower:
            continue
        current = cursor.current()
        if current is None:
            continue
        for index, cell in enumerate(current[1]):
            if cell == value and cell.__class__ is value.__class__:
                return cursor, index
    return None


class Leader:
    """The guesses made from one outer cursor's rows, for each inner cursor that follows it.

    ``budget`` bounds the keys fetched that SQLite never asks for; it is the statement's, shared with the other
    outer cursors open at the same time.
    """

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._guesses: dict[tuple[int, Any], _Guess] = {}

    def take(self, follower: object, key: Any, row: int) -> Source | None:
        """SQLite now asks for ``key`` at the outer row ``row``: the source already started for it, or None.

        Guesses from earlier outer rows that SQLite passed by are misses and are dropped.
        """
        for (owner, guessed), guess in list(self._guesses.items()):
            if owner == id(follower) and guess.row < row and guessed != key:
                self._drop((owner, guessed))
        guess = self._guesses.pop((id(follower), key), None)
        if guess is None:
            return None
        self.budget.open -= 1
        if guess.future.cancel():
            return None  # still queued: no request left, so the normal path fetches it on a worker of its own
        guess.source.first = guess.future
        return guess.source

    def open_guesses(self, follower: object) -> int:
        """How many guesses of ``follower`` are not yet asked for."""
        return sum(owner == id(follower) for owner, _ in self._guesses)

    def add(self, follower: object, key: Any, row: int, source: Source, future: Future[list[Row]]) -> None:
        """Keep ``future`` (the first page of ``key``, guessed from the outer row ``row``) for ``follower``."""
        self._guesses[id(follower), key] = _Guess(source, future, row)
        self.budget.open += 1

    def forget(self, follower: object | None = None) -> None:
        """Drop the guesses of ``follower`` (of every follower when None): the outer cursor re-filtered or closed,
        or the inner one closed. A guess whose request already left counts as a miss."""
        for owner, key in list(self._guesses):
            if follower is None or owner == id(follower):
                self._drop((owner, key))

    def _drop(self, which: tuple[int, Any]) -> None:
        guess = self._guesses.pop(which)
        self.budget.open -= 1
        if not guess.future.cancel():
            self.budget.misses += 1


class Follower:
    """An inner cursor's side of read-ahead: which outer cursor it follows (and by which column of its rows), how
    many keys it guesses ahead (``most``), and the keys it has seen, which are never guessed again (no key is
    fetched twice by read-ahead)."""

    def __init__(self, owner: object, most: int) -> None:
        self.owner = owner
        self.most = most
        self._leader: LeaderCursor | None = None
        self._column = -1
        self._seen: set[Any] = set()

    def first_source(
        self,
        cursors: Iterable[LeaderCursor],
        key: Any,
        start: Callable[[Any], tuple[Source, Future[list[Row]]]] | None,
    ) -> tuple[bool, Source | None]:
        """SQLite asks for ``key``: (whether an outer cursor of ours supplied it, the source fetched ahead or None).

        Then guesses the keys of that cursor's next rows with ``start`` (None: the registration is closed).
        """
        leader = self._leader
        current = leader.current() if leader is not None else None
        if leader is None or current is None or current[1][self._column] != key:
            found = find_leader(cursors, self.owner, key)
            if found is None:
                if leader is not None:
                    leader.ahead.forget(self.owner)
                self._leader = None
                self._seen.add(key)
                return False, None
            if leader is not None and found[0] is not leader:
                leader.ahead.forget(self.owner)
            leader, self._column = found
            self._leader = leader
            current = leader.current()
            assert current is not None
        ahead = leader.ahead
        source = ahead.take(self.owner, key, current[0])
        self._seen.add(key)
        if start is not None:
            for row, values in leader.upcoming(self.most):
                if ahead.open_guesses(self.owner) >= self.most or not ahead.budget.allows_one_more():
                    break
                value = values[self._column]
                if value.__class__ is not str or value in self._seen:
                    continue
                self._seen.add(value)
                ahead.add(self.owner, value, row, *start(value))
        return True, source

    def close(self) -> None:
        """The inner cursor closed: its guesses are dropped."""
        if self._leader is not None:
            self._leader.ahead.forget(self.owner)
            self._leader = None


class SpeculationPool:
    """Daemon threads that fetch guessed keys, started as needed up to ``workers``.

    Not a ThreadPoolExecutor: that one's threads are joined when the interpreter exits, so a guess hanging on
    the network would hold the end of the process (or of the shell). ``prepare`` runs on the thread before each
    task (it marks the thread's requests as speculative and hands it the current abandon event).
    """

    def __init__(self, workers: int, prepare: Callable[[], None]) -> None:
        self._workers = workers
        self._prepare = prepare
        self._tasks: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a task
        self._queued = 0  # tasks no thread has taken yet
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn`` on a pool thread; the future can be cancelled until a thread takes it."""
        future: Future[Any] = Future()
        with self._lock:
            self._queued += 1
            if self._queued > self._idle and len(self._threads) < self._workers:
                thread = threading.Thread(target=self._work, name="openai-vtab-readahead", daemon=True)
                self._threads.append(thread)
                thread.start()
        self._tasks.put((future, fn))
        return future

    def stop(self) -> None:
        """Let every thread end once its current task is done (nothing waits for it)."""
        with self._lock:
            for _ in self._threads:
                self._tasks.put(None)
            self._threads.clear()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            task = self._tasks.get()
            if task is None:
                return
            with self._lock:
                self._idle -= 1
                self._queued -= 1
            future, fn = task
            if future.set_running_or_notify_cancel():
                try:
                    self._prepare()
                    future.set_result(fn())
                except BaseException as error:  # handed to whoever asks for the key, as a normal fetch raises it
                    future.set_exception(error)
