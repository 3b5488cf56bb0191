"""A small response cache: raw bodies by request, with a time-to-live and a bound on total bytes.

Raw bytes, not parsed JSON, because they are several times smaller and parsing them again costs little
next to a round trip. Least recently used entries go first when the bound is reached.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

__all__ = ["DEFAULT_CACHE_BYTES", "DEFAULT_CACHE_TTL", "ResponseCache"]

DEFAULT_CACHE_TTL = 300.0
DEFAULT_CACHE_BYTES = 32 * 1024 * 1024


class ResponseCache:
    """Thread-safe LRU of ``(status, body)`` by key, each entry living ``ttl`` seconds."""

    def __init__(self, ttl: float = DEFAULT_CACHE_TTL, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[float, int, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> tuple[int, bytes] | None:
        """The fresh ``(status, body)`` stored under ``key``, or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stored, status, body = entry
            if time.monotonic() - stored > self.ttl:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return status, body

    def put(self, key: Hashable, status: int, body: bytes) -> None:
        """Store a response; one larger than the whole bound is not kept."""
        if len(body) > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (time.monotonic(), status, body)
            self._bytes += len(body)
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def discard(self, matches: Callable[[Hashable], bool]) -> None:
        """Forget the entries whose key ``matches``."""
        with self._lock:
            for key in [key for key in self._entries if matches(key)]:
                self._drop(key)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    @property
    def size(self) -> tuple[int, int]:
        """(entries, bytes) held now."""
        with self._lock:
            return len(self._entries), self._bytes

    def _drop(self, key: Hashable) -> None:
        _, _, body = self._entries.pop(key)
        self._bytes -= len(body)
