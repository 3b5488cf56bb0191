"""The fake's costs and usage routes: GET /organization/costs and GET /organization/usage/{kind}.

What is added are individual records (a cost, or a use of one API at one moment with its project, user, key,
model, ...); each request aggregates them as the API does: buckets of ``bucket_width`` from ``start_time`` (UTC
aligned) up to ``end_time`` (exclusive, default now), one result per combination of the ``group_by[]`` fields
(fields not grouped are null), ``limit`` buckets a page, and the next page behind a ``next_page`` token that
ends in ``=`` padding and must come back exactly as it went out (a percent-encoded ``%3D`` is refused, as the
real API refuses it).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from .errors import FakeError

__all__ = ["COUNTS", "GROUPS", "UsageRoutes"]

# Per usage kind: the counts a record carries (summed per result) and the fields it can be grouped by.
COUNTS: dict[str, tuple[str, ...]] = {
    "completions": (
        "input_tokens",
        "output_tokens",
        "input_cached_tokens",
        "input_audio_tokens",
        "output_audio_tokens",
        "num_model_requests",
    ),
    "embeddings": ("input_tokens", "num_model_requests"),
    "moderations": ("input_tokens", "num_model_requests"),
    "images": ("images", "num_model_requests"),
    "audio_speeches": ("characters", "num_model_requests"),
    "audio_transcriptions": ("seconds", "num_model_requests"),
    "vector_stores": ("usage_bytes",),
    "code_interpreter_sessions": ("num_sessions",),
    "file_search_calls": ("num_requests",),
    "web_search_calls": ("num_requests", "num_model_requests"),
}
_PEOPLE = ("project_id", "user_id", "api_key_id", "model")
GROUPS: dict[str, tuple[str, ...]] = {
    "costs": ("project_id", "line_item", "api_key_id"),
    "completions": (*_PEOPLE, "batch", "service_tier"),
    "embeddings": _PEOPLE,
    "moderations": _PEOPLE,
    "images": (*_PEOPLE, "size", "source"),
    "audio_speeches": _PEOPLE,
    "audio_transcriptions": _PEOPLE,
    "vector_stores": ("project_id",),
    "code_interpreter_sessions": ("project_id",),
    "file_search_calls": ("project_id", "user_id", "api_key_id", "vector_store_id"),
    "web_search_calls": (*_PEOPLE, "context_level"),
}
# The result objects' names, where they differ from the kind's.
_OBJECTS = {"file_search_calls": "file_searches", "web_search_calls": "web_searches"}
_WIDTHS = {"1m": 60, "1h": 3600, "1d": 86_400}
# (default, maximum) buckets a page, per width; costs take 1d only, 7 by default and up to 180.
_LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}
_COSTS_LIMITS = (7, 180)
# A filter parameter (project_ids[]) and the record field it selects on.
_FILTERS = {"project_ids": "project_id", "user_ids": "user_id", "api_key_ids": "api_key_id", "models": "model"}


class UsageRoutes:
    """Mixin of ``FakeOpenAI``: records to add, and the costs and usage routes that aggregate them.

    Expects ``self.state.usage`` (kind -> records), ``self._lock`` and ``self.clock`` (the fake's notion of
    now, a callable; the real clock unless a test sets it).
    """

    state: Any
    _lock: Any
    clock: Any

    def add_usage(self, kind: str, at: int, **fields: Any) -> dict[str, Any]:
        """Record a use of API ``kind`` (``completions``, ``embeddings``, ...) at unix time ``at``: its counts
        (``input_tokens=...``; missing ones are 0) and who made it (``project_id``, ``user_id``, ``model``, ...)."""
        if kind not in COUNTS:
            raise ValueError(f"unknown usage kind {kind!r}: one of {sorted(COUNTS)}")
        record = {"at": at, **{count: 0 for count in COUNTS[kind]}, **fields}
        with self._lock:
            self.state.usage.setdefault(kind, []).append(record)
        return record

    def add_cost(
        self,
        at: int,
        value: float,
        *,
        project_id: str,
        line_item: str,
        api_key_id: str | None = None,
        quantity: float | None = None,
        quantity_unit: str | None = None,
        currency: str = "usd",
    ) -> dict[str, Any]:
        """Record a cost of ``value`` (in ``currency``) at unix time ``at``."""
        record = {
            "at": at,
            "value": value,
            "currency": currency,
            "project_id": project_id,
            "line_item": line_item,
            "api_key_id": api_key_id,
            "quantity": quantity,
            "quantity_unit": quantity_unit,
        }
        with self._lock:
            self.state.usage.setdefault("costs", []).append(record)
        return record

    @staticmethod
    def _route_usage(segments: list[str]) -> tuple[str, tuple[str, ...]] | None:
        match segments:
            case ["v1", "organization", "costs"]:
                return "costs", ()
            case ["v1", "organization", "usage", kind] if kind in COUNTS:
                return f"usage_{kind}", ()
        return None

    def _answer_usage(self, route: str, query: str) -> dict[str, Any]:
        """One page of buckets; called with the lock held. ``query`` is the raw query string: arrays repeat."""
        kind = route.removeprefix("usage_")
        pairs = parse_qsl(query, keep_blank_values=True)
        single = {name: value for name, value in pairs if not name.endswith("[]")}
        arrays: dict[str, list[str]] = {}
        for name, value in pairs:
            if name.endswith("[]"):
                arrays.setdefault(name[:-2], []).append(value)
        groups = GROUPS[kind]
        allowed = {"start_time", "end_time", "bucket_width", "limit", "page"}
        for name in single:
            if name not in allowed:
                raise FakeError(400, f"Unrecognized request argument supplied: {name}", param=name)
        for name, values in arrays.items():
            known = {"group_by", "project_ids", *(("api_key_ids",) if kind == "costs" else ())}
            if kind not in ("costs", "vector_stores", "code_interpreter_sessions"):
                known |= {"user_ids", "api_key_ids", "models"}
            if name not in known:
                raise FakeError(400, f"Unrecognized request argument supplied: {name}[]", param=name)
            if name == "group_by" and not set(values) <= set(groups):
                raise FakeError(400, f"Invalid 'group_by': {values} (allowed: {list(groups)}).", param="group_by")
        if "start_time" not in single:
            raise FakeError(400, "Missing required parameter: 'start_time'.", param="start_time")
        start, end = _integer(single, "start_time"), _integer(single, "end_time")
        width = single.get("bucket_width", "1d")
        if width not in (("1d",) if kind == "costs" else tuple(_WIDTHS)):
            raise FakeError(400, f"Invalid 'bucket_width': {width!r}.", param="bucket_width")
        default, maximum = _COSTS_LIMITS if kind == "costs" else _LIMITS[width]
        limit = _integer(single, "limit")
        limit = default if limit is None else limit
        if not 1 <= limit <= maximum:
            raise FakeError(400, f"Invalid 'limit': must be between 1 and {maximum}, got {limit}.", param="limit")
        seconds = _WIDTHS[width]
        first = start - start % seconds
        stop = end if end is not None else int(self.clock()) + 1
        offset = _page_offset(single["page"], query) if "page" in single else 0
        bucket_starts = list(range(first, stop, seconds))
        shown = bucket_starts[offset : offset + limit]
        grouped = arrays.get("group_by", [])
        wanted = {_FILTERS.get(name, name): set(values) for name, values in arrays.items() if name != "group_by"}
        records = [
            r
            for r in self.state.usage.get(kind, [])
            if start <= r["at"] < stop and all(r.get(field) in values for field, values in wanted.items())
        ]
        by_bucket: dict[int, list[dict[str, Any]]] = {}
        for record in records:
            by_bucket.setdefault(record["at"] - (record["at"] - first) % seconds, []).append(record)
        data = [_bucket(kind, b, b + seconds, by_bucket.get(b, []), grouped) for b in shown]
        more = offset + limit < len(bucket_starts)
        return {"object": "page", "data": data, "has_more": more, "next_page": _token(offset + limit) if more else None}


def _integer(params: Mapping[str, str], name: str) -> int | None:
    if name not in params:
        return None
    try:
        return int(params[name])
    except ValueError:
        raise FakeError(400, f"Invalid '{name}': expected an integer, got {params[name]!r}.", param=name) from None


def _token(offset: int) -> str:
    # Base64 of a small text: it ends in "=" padding, as the real tokens do, which is what a client must keep.
    return "page_" + base64.b64encode(f"offset:{offset:04d}".encode()).decode()


def _page_offset(token: str, query: str) -> int:
    sent = next(part for part in query.split("&") if part.startswith("page="))
    if "%3d" in sent.lower():
        raise FakeError(400, "Invalid 'page': the token was altered (its '=' was percent-encoded).", param="page")
    try:
        return int(base64.b64decode(token.removeprefix("page_")).decode().removeprefix("offset:"))
    except ValueError:
        raise FakeError(400, f"Invalid 'page': {token!r} is not a page token.", param="page") from None


def _bucket(kind: str, start: int, end: int, records: list[dict[str, Any]], grouped: list[str]) -> dict[str, Any]:
    """One bucket: a result per combination of the grouped fields among its records (those in [start, end))."""
    results: dict[tuple[Any, ...], dict[str, Any]] = {}
    for record in records:
        key = tuple(record.get(field) for field in grouped)
        result = results.get(key)
        if result is None:
            result = results[key] = _empty_result(kind, dict(zip(grouped, key, strict=True)))
        _add(kind, result, record)
    return {"object": "bucket", "start_time": start, "end_time": end, "results": list(results.values())}


def _empty_result(kind: str, group: dict[str, Any]) -> dict[str, Any]:
    fields = {field: group.get(field) for field in GROUPS[kind]}
    if kind == "costs":
        return {
            "object": "organization.costs.result",
            "amount": {"value": 0.0, "currency": "usd"},
            **fields,
            "quantity": None,
            "quantity_unit": None,
        }
    return {
        "object": f"organization.usage.{_OBJECTS.get(kind, kind)}.result",
        **{count: 0 for count in COUNTS[kind]},
        **fields,
    }


def _add(kind: str, result: dict[str, Any], record: Mapping[str, Any]) -> None:
    if kind != "costs":
        for count in COUNTS[kind]:
            result[count] += record[count]
        return
    result["amount"] = {"value": round(result["amount"]["value"] + record["value"], 6), "currency": record["currency"]}
    if record["quantity"] is not None and "line_item" in result and result["line_item"] is not None:
        result["quantity"] = (result["quantity"] or 0) + record["quantity"]
        result["quantity_unit"] = record["quantity_unit"]


def clock() -> float:
    """The real clock: what the fake calls now unless a test sets ``FakeOpenAI.clock``."""
    return time.time()
