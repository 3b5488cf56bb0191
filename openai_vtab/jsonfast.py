"""JSON for the per-row hot path: orjson's speed with exactly the standard library's values and text.

``loads`` decodes a page and ``dumps`` writes a JSON column's text. orjson does the work when it is installed
and its answer is known to equal the standard library's; everything else goes to the standard library, which
stays the reference (``std_loads`` and ``std_dumps``). Where the two differ, and what sends a value to the
standard library instead:

* decoding: orjson rejects ``NaN``/``Infinity``, numbers beyond a float (``1e400``), a UTF-8 BOM, lone
  surrogates and other input the standard library accepts: its error sends the body to the standard library,
  whose error, if it fails too, is the one the user sees. It turns an integer beyond 64 bits into a float
  instead of failing: a body with a run of 19 or more digits is decoded by the standard library.
* encoding: orjson writes ``null`` for NaN and infinities (the standard library ``NaN``/``Infinity``), writes
  floats below 1e-4 differently (``0.00001``, ``1e-7`` for ``1e-05``, ``1e-07``), and rejects integers beyond
  64 bits and lone surrogates: text holding ``null``, ``e-`` or ``0.0000``, or an error, is written by the
  standard library. For every other value the two write the same text (tests/test_jsonfast.py checks it).
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson as _orjson
except ImportError:  # a platform without an orjson wheel: everything takes the standard library's path
    _orjson = None

__all__ = ["dumps", "loads", "std_dumps", "std_loads"]

std_loads = json.loads
# Compact and with non-ASCII kept: the text JSON columns have always held.
std_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

# Every digit as "0", everything else as ".": a run of 19 digits is then a plain substring search, ten times
# faster than a regular expression over a page.
_DIGITS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x2E for byte in range(256))
_LONG_RUN = b"0" * 19


def loads(body: bytes) -> Any:
    """``body`` decoded as ``json.loads`` decodes it; a ValueError (the standard library's) if it is not JSON."""
    if _orjson is not None and _LONG_RUN not in body.translate(_DIGITS):
        try:
            return _orjson.loads(body)
        except _orjson.JSONDecodeError:
            pass
    return std_loads(body)


def dumps(value: Any) -> str:
    """``value`` as compact JSON text with non-ASCII kept, exactly as ``std_dumps`` writes it."""
    if _orjson is not None:
        try:
            text = _orjson.dumps(value).decode()
        except _orjson.JSONEncodeError:
            return std_dumps(value)
        # Searched as str, not bytes: bytes.__contains__ costs five times as much here.
        if "null" not in text and "e-" not in text and "0.0000" not in text:
            return text
    return std_dumps(value)
