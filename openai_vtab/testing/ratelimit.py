"""The fake's rate-limit mode: a token bucket in front of every route, answering like the real API.

``FakeOpenAI(rate_limit=20)`` allows 20 requests a second: a bucket of 20 tokens that refills at that rate.
Every answer carries the API's headers (``x-ratelimit-limit-requests``, the bucket's size;
``x-ratelimit-remaining-requests``, the tokens left; ``x-ratelimit-reset-requests``, the time until it is
full again, written as the API writes it: ``50ms``, ``1.5s``, ``6m0s``). A request that finds the bucket
empty is logged, counted in ``rate_limited``, and answered 429 with the API's error body
(``rate_limit_exceeded``) and ``retry-after`` / ``retry-after-ms`` saying when the next token comes.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .errors import FakeError

__all__ = ["RateLimitMode", "TokenBucket", "format_duration"]

Answer = tuple[int, dict[str, str], bytes | None]


def format_duration(seconds: float) -> str:
    """A duration as the API writes it, rounded up to the millisecond: ``20ms``, ``1s``, ``1.5s``, ``6m0s``."""
    millis = math.ceil(seconds * 1000 - 1e-9)
    if millis < 1000:
        return f"{millis}ms"
    minutes, millis = divmod(millis, 60_000)
    text = f"{millis / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{minutes}m{text}" if minutes else text


class TokenBucket:
    """``rate`` tokens a second into a bucket of ``rate`` (one second's worth, at least one); thread-safe."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"rate_limit must be a positive number of requests per second, not {rate!r}")
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()
        self._lock = threading.Lock()
        self._unused = 0.0

    @property
    def unused(self) -> float:
        """Tokens that came while the bucket was full, and so were lost: requests the limit allowed that were not
        sent (a client that stalls below the limit wastes them)."""
        with self._lock:
            self._fill(self._clock())
            return self._unused

    def _fill(self, now: float) -> None:
        tokens = self._tokens + (now - self._stamp) * self.rate
        self._unused += max(0.0, tokens - self.capacity)
        self._tokens = min(self.capacity, tokens)
        self._stamp = now

    def take(self) -> tuple[bool, dict[str, str], float]:
        """Spend a token if there is one: (granted, the answer's headers, seconds until the next token)."""
        with self._lock:
            now = self._clock()
            self._fill(now)
            granted = self._tokens >= 1
            if granted:
                self._tokens -= 1
            tokens = self._tokens
        headers = {
            "x-ratelimit-limit-requests": str(math.floor(self.capacity)),
            "x-ratelimit-remaining-requests": str(math.floor(tokens)),
            "x-ratelimit-reset-requests": format_duration((self.capacity - tokens) / self.rate),
        }
        return granted, headers, max(0.0, (1 - tokens) / self.rate)


class RateLimitMode:
    """Mixin of ``FakeOpenAI``: the ``rate_limit`` setting (requests per second, None for no limit; setting it
    starts a full bucket) and ``rate_limited``, the number of 429s the bucket answered.

    Expects ``self._lock``, ``self.organization``, ``self._handle(method, raw, headers, payload)`` (the answer of the
    routes) and ``self._record(method, raw, headers, payload)`` (logs a request).
    """

    _lock: Any
    organization: str | None
    _handle: Callable[[str, str, Mapping[str, str], bytes], Answer]
    _record: Callable[[str, str, Mapping[str, str], bytes], Any]
    _bucket: TokenBucket | None = None
    rate_limited = 0

    @property
    def unused_tokens(self) -> float:
        """Requests the rate limit allowed since it was set that nobody sent (the bucket was full): 0 without one."""
        return 0.0 if self._bucket is None else self._bucket.unused

    @property
    def rate_limit(self) -> float | None:
        """Requests allowed per second, or None for no limit."""
        return None if self._bucket is None else self._bucket.rate

    @rate_limit.setter
    def rate_limit(self, rate: float | None) -> None:
        self._bucket = None if rate is None else TokenBucket(rate)

    def _within_rate_limit(self, method: str, raw: str, headers: Mapping[str, str], payload: bytes) -> Answer:
        """The routes' answer with the rate-limit headers, or the API's 429 when the bucket is empty."""
        bucket = self._bucket
        if bucket is None:
            return self._handle(method, raw, headers, payload)
        granted, limits, wait = bucket.take()
        if granted:
            status, extra, body = self._handle(method, raw, headers, payload)
            return status, {**limits, **extra}, body
        self._record(method, raw, headers, payload)
        with self._lock:
            self.rate_limited += 1
        limit = limits["x-ratelimit-limit-requests"]
        error = FakeError(
            429,
            f"Rate limit reached in organization {self.organization or 'org-fake'} on requests per second (RPS): "
            f"Limit {limit}, Used {limit}, Requested 1. Please try again in {format_duration(wait)}. "
            "Visit https://platform.openai.com/account/rate-limits to learn more.",
            type="requests",
            code="rate_limit_exceeded",
        )
        retry = {"retry-after": str(math.ceil(wait)), "retry-after-ms": str(math.ceil(wait * 1000))}
        return 429, {**limits, **retry}, json.dumps(error.body).encode()
