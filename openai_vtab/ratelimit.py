"""How many requests may be on the wire, and when the next may start: concurrency that follows the rate limit.

One ``RateLimiter`` per registration and credential is shared by all its worker threads. Each attempt (a
retry too) takes a ``Slot`` before it is sent and hands it back with the answer's status and headers, from
which the limiter learns two things:

- The API's request bucket, from ``x-ratelimit-limit-requests`` (its size), ``x-ratelimit-remaining-requests``
  and ``x-ratelimit-reset-requests`` (the time until it is full again). A request starts only when the
  limiter's model of the bucket holds a token for it, so as the remaining count nears zero, fewer requests
  are in flight and they start at the pace the bucket refills, instead of running into 429s. The model never
  holds more than the server's bucket while nothing else spends it: it spends a token when a request starts
  (before the server does), it refills at a rate that is a lower bound of the server's, and each answer is a
  lower bound on its own (what the server had left, less every request it may have counted since), of which
  it keeps the highest. Until the first answer it knows nothing, and the worker pool alone bounds the
  requests: a bucket smaller than ``max_workers`` refuses the rest of that first round.
- A 429 halves the number of requests allowed in flight (once per round: the answers of requests that
  started before the last halving do not halve again) and pauses every new start for the ``retry-after-ms``
  / ``Retry-After`` the server asked for (or its reset time). Each answer that is not an error raises the
  number again by 1/limit, so it climbs back by about one per round of answers, up to ``ceiling``
  (``max_workers``: this limiter only ever lowers what the worker pool allows).

A header that is missing or unreadable is ignored: without them, only 429s teach anything. Waits longer than
``max_pause`` are not taken: the request goes out and its answer says how long to wait, which fails the query
with that advice instead of blocking it for minutes.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping

from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

__all__ = ["AbandonedError", "RateLimiter", "Slot", "parse_duration", "retry_after"]

# How often a waiting start checks whether its query was abandoned; a slot handed back wakes it at once.
POLL_SECONDS = 0.05
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


class AbandonedError(Exception):
    """The query that wanted this request is gone (interrupted, or its connection closed)."""


def parse_duration(text: str | None) -> float | None:
    """Seconds in a duration as the API writes ``x-ratelimit-reset-requests``: ``1s``, ``6m0s``, ``20ms``,
    ``1.5s``, ``1h2m3s`` (Go's format), or a bare number of seconds; None when it is none of these."""
    if text is None:
        return None
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(number + unit for number, unit in parts) != text:
            return None
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _count(text: str | None) -> int | None:
    try:
        value = int(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked to wait: ``retry-after-ms``, else ``Retry-After`` (seconds or an HTTP date);
    None when neither is there or readable. ``headers`` may be a plain dict in any letter case."""
    lowered = {name.lower(): value for name, value in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        try:
            seconds = float(millis) / 1000
        except ValueError:
            pass
        else:
            if math.isfinite(seconds):
                return max(0.0, seconds)
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return Retry.parse_retry_after(Retry(0), value)
    except (InvalidHeader, ValueError, OverflowError):
        return None


class Slot:
    """One attempt's permission to be on the wire; ``release`` it with the answer (or nothing) exactly once."""

    __slots__ = ("_released", "abandoned", "epoch", "limiter", "overlapping", "refused_later", "seq", "started")

    def __init__(
        self, limiter: RateLimiter, seq: int, epoch: int, started: float, abandoned: threading.Event | None
    ) -> None:
        self.limiter = limiter
        self.seq = seq
        self.epoch = epoch
        self.started = started
        self.abandoned = abandoned
        self._released = False
        # What the server may have counted after this attempt, besides the attempts started later: those in
        # flight when it started (their answers may come first, yet they may have reached the server later);
        # and how many attempts started later were refused with a 429, which spends no token.
        self.overlapping: set[int] = set()
        self.refused_later = 0

    def release(self, status: int | None = None, headers: Mapping[str, str] | None = None) -> None:
        """Hand the slot back; ``status`` and ``headers`` are the answer's, None when none came."""
        if not self._released:
            self._released = True
            self.limiter._release(self, status, headers or {})


class RateLimiter:
    """The adaptive limit of one credential's requests: see the module docstring.

    ``ceiling`` is the most requests ever allowed in flight (None: as many as the caller's threads);
    ``max_pause`` the longest wait it imposes by itself.
    """

    def __init__(self, ceiling: int | None, *, max_pause: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = ceiling
        self.max_pause = max_pause
        self._clock = clock
        self._changed = threading.Condition()
        self._limit = float(ceiling) if ceiling is not None else math.inf
        self._epoch = 0
        self._started = 0
        self._active: dict[int, Slot] = {}
        self._not_before = 0.0
        # The model of the server's bucket: None while unknown. Without a known refill rate, the bucket is
        # taken as full again at ``_full_at`` (its reset time).
        self._tokens: float | None = None
        self._stamp = 0.0
        self._rate: float | None = None
        self._capacity: float | None = None
        self._full_at: float | None = None

    @property
    def limit(self) -> float:
        """How many requests may be in flight now (``ceiling`` until a 429 lowers it)."""
        with self._changed:
            return self._limit

    @property
    def rate(self) -> float | None:
        """The bucket's refill rate learned from the headers (requests a second, never above the server's), or
        None while they have not told it."""
        with self._changed:
            return self._rate

    @property
    def tokens(self) -> float | None:
        """The requests the server's bucket is believed to allow now; None when no header told."""
        with self._changed:
            return self._refill(self._clock())

    def acquire(self, abandoned: threading.Event | None = None) -> Slot:
        """Wait until a request may start, and take its slot; AbandonedError once ``abandoned`` is set."""
        with self._changed:
            while True:
                if abandoned is not None and abandoned.is_set():
                    raise AbandonedError()
                now = self._clock()
                wait = self._wait(now)
                if wait <= 0:
                    break
                self._changed.wait(min(wait, POLL_SECONDS))
            slot = Slot(self, self._started, self._epoch, now, abandoned)
            slot.overlapping.update(self._active)
            self._started += 1
            self._active[slot.seq] = slot
            if self._tokens is not None:
                self._tokens -= 1
            return slot

    def _wait(self, now: float) -> float:
        """Seconds until a request may start (0: now); a wait for a slot is polled, a wait for time is known."""
        if now < self._not_before:
            return self._not_before - now
        # Only a lowered limit holds requests back: at the ceiling the worker pool already bounds them. A
        # request whose query was abandoned still runs out its timeout but no longer counts.
        if self._limit < (self.ceiling or math.inf):
            running = sum(1 for slot in self._active.values() if slot.abandoned is None or not slot.abandoned.is_set())
            if running >= math.floor(self._limit):
                return POLL_SECONDS
        tokens = self._refill(now)
        if tokens is None or tokens >= 1:
            return 0.0
        if self._rate:
            wait = (1 - tokens) / self._rate
        elif self._full_at is not None:
            wait = self._full_at - now
        else:
            return 0.0
        return wait if wait <= self.max_pause else 0.0

    def _refill(self, now: float) -> float | None:
        """The model's level at ``now``, refilled since it was last looked at (None: unknown)."""
        if self._tokens is not None and self._rate:
            self._tokens = min(self._capacity or math.inf, self._tokens + (now - self._stamp) * self._rate)
        elif self._tokens is not None and self._full_at is not None and now >= self._full_at:
            self._tokens = self._full_at = None
        self._stamp = now
        return self._tokens

    def _release(self, slot: Slot, status: int | None, headers: Mapping[str, str]) -> None:
        with self._changed:
            del self._active[slot.seq]
            now = self._clock()
            lowered = {name.lower(): value for name, value in headers.items()}
            if status == 429:
                for other in self._active.values():
                    other.overlapping.discard(slot.seq)
                    other.refused_later += other.seq < slot.seq
                self._refused(slot, now, lowered)
            else:
                level = self._learn(slot, now, lowered, spent=status is not None)
                if level is not None:
                    # Each answer bounds the bucket from below on its own (while nothing else spends it), so
                    # the highest bound holds: one that came late, or counted more, does not drag it down.
                    current = self._refill(now)
                    self._tokens = level if current is None else max(current, level)
                if status is not None and status < 400:
                    self._limit = min(self.ceiling or math.inf, self._limit + 1 / self._limit)
            self._changed.notify_all()

    def _unseen(self, slot: Slot) -> int:
        """Requests the server may have counted after it answered ``slot``: every one started after it, and those
        in flight when it started, but those refused with a 429."""
        return self._started - slot.seq - 1 - slot.refused_later + len(slot.overlapping)

    def _learn(self, slot: Slot, now: float, headers: Mapping[str, str], *, spent: bool) -> float | None:
        """Learn the bucket's size and rate from an answer's headers (``spent``: the server took a token for it);
        return the bucket's level now as this answer alone bounds it, None when it does not say."""
        capacity = _count(headers.get("x-ratelimit-limit-requests"))
        remaining = _count(headers.get("x-ratelimit-remaining-requests"))
        reset = parse_duration(headers.get("x-ratelimit-reset-requests"))
        if capacity is not None:
            self._capacity = float(capacity)
        if capacity is not None and remaining is not None and reset:
            # The bucket refills (capacity - its true level) in ``reset`` seconds. That level is below
            # remaining + 1 and, right after spending a token, at most capacity - 1: so a bucket full but for
            # this request tells the rate exactly (1 / reset), and no answer gives more than the server's.
            level = min(remaining + 1, capacity - 1) if spent else remaining + 1
            if capacity > level:
                self._rate = max(self._rate or 0.0, (capacity - level) / reset)
        if remaining is None:
            return None
        if self._rate is None and reset is not None:
            self._full_at = now + reset
        # What the server counted, less what it may have counted since. No credit for its refill since: it
        # counted at some moment between the start and now, and crediting from the start (the first
        # connections take a while to reach it) overran a bucket of 20 on the first burst.
        return float(remaining - self._unseen(slot))

    def _refused(self, slot: Slot, now: float, headers: Mapping[str, str]) -> None:
        if slot.epoch == self._epoch:
            running = len(self._active) + 1
            self._limit = max(1.0, min(self._limit, running) / 2)
            self._epoch += 1
        # A 429 despite the model: the first answers had not come yet, or something else spends this bucket
        # too. It says where the bucket is, not how fast it refills: the rate learned stays, and the level
        # drops to what this answer allows (below one token when the server answered, less what it may have
        # counted since).
        level = self._learn(slot, now, headers, spent=False)
        if level is None:
            level = float(-self._unseen(slot))
        current = self._refill(now)
        self._tokens = level if current is None else min(current, level)
        reset = parse_duration(headers.get("x-ratelimit-reset-requests"))
        wait = retry_after(headers)
        if self._rate is None:
            self._full_at = now + (reset if reset is not None else wait or 0.0)
        if wait is None:
            wait = reset
        if wait is not None and wait <= self.max_pause:
            self._not_before = max(self._not_before, now + wait)
