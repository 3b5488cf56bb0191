"""How a table's rows come out of API answers: paging styles, body decoders, and following a reference.

Pure functions on decoded bodies: no HTTP and no SQLite. ``tables.py`` names these pieces in its declarations,
and ``client.Pager`` runs them, with the one loop that guards against servers that page forever.

* A paging style is two small hooks, as in the official SDK's ``pagination.py``: the parameters of the first
  page, and those of the next page given the answer (None: that was the last). ``NO_PAGING``,
  ``AFTER_CURSOR`` (``after`` = the last item's id) and ``PAGE_TOKEN`` (``page`` = the answer's ``next_page``)
  are the styles the tables use.
* A decoder turns a body's bytes into Python values: ``JSON`` for API objects (``jsonfast.loads``: orjson's
  speed, the standard library's values), ``CSV`` for result files.
* ``items`` says where the rows sit in a decoded body: ``"data[]"`` for the API's list wrapper, ``"[]"`` for a
  body that is itself the list, ``"data[].results[]"`` for rows inside the items of a list (usage buckets):
  each such row carries the object it sits in under ``"parent"``.
* ``Follow``: the rows are not in the table's own answer but in a resource it names (a job's result file).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import jsonfast

__all__ = [
    "AFTER_CURSOR",
    "CSV",
    "JSON",
    "NO_PAGING",
    "PAGE_TOKEN",
    "Decoder",
    "Follow",
    "PageToken",
    "Paging",
    "items_at",
    "pick",
]


@dataclass(frozen=True)
class Paging:
    """A paging style: ``first(page_size)`` gives the first page's parameters; ``next(body, items, page_size)``
    the next page's, or None after the last page; ``check(body, items)`` names what is wrong with an answer
    that cannot be paged on (or returns None)."""

    name: str
    first: Callable[[int], dict[str, Any]]
    next: Callable[[Mapping[str, Any], list[dict[str, Any]], int], dict[str, Any] | None]
    check: Callable[[Mapping[str, Any], list[dict[str, Any]]], str | None]

    @property
    def paged(self) -> bool:
        """True when answers come in more than one page."""
        return self is not NO_PAGING


def _after_next(body: Mapping[str, Any], items: list[dict[str, Any]], page_size: int) -> dict[str, Any] | None:
    # The SDK's rule: after = the last item's id while has_more (last_id is not sent by every endpoint).
    return {"limit": page_size, "after": items[-1]["id"]} if body["has_more"] and items else None


def _after_check(body: Mapping[str, Any], items: list[dict[str, Any]]) -> str | None:
    if not isinstance(body.get("has_more"), bool):
        return "has no boolean 'has_more'"
    for index, item in enumerate(items):
        if not isinstance(item.get("id"), str):
            return f"has an item without a string 'id' at data[{index}]"
    return None


def _token_next(body: Mapping[str, Any], items: list[dict[str, Any]], page_size: int) -> dict[str, Any] | None:
    return {"limit": page_size, "page": PageToken(body["next_page"])} if body["has_more"] else None


def _token_check(body: Mapping[str, Any], items: list[dict[str, Any]]) -> str | None:
    if not isinstance(body.get("has_more"), bool):
        return "has no boolean 'has_more'"
    if body["has_more"] and not (isinstance(body.get("next_page"), str) and body["next_page"]):
        return "says has_more=true but has no 'next_page' token"
    return None


class PageToken(str):
    """A ``next_page`` token, sent back exactly as received: the API rejects one whose ``=`` padding is
    percent-encoded."""


NO_PAGING = Paging("none", first=lambda size: {}, next=lambda body, items, size: None, check=lambda body, items: None)
AFTER_CURSOR = Paging("after", first=lambda size: {"limit": size}, next=_after_next, check=_after_check)
PAGE_TOKEN = Paging("page", first=lambda size: {"limit": size}, next=_token_next, check=_token_check)


@dataclass(frozen=True)
class Decoder:
    """Turns a body's bytes into Python values; ``name`` is what error messages call the format."""

    name: str
    decode: Callable[[bytes], Any]


def _number(text: str) -> Any:
    """A CSV cell as a number when it is one (``12`` -> 12, ``0.5`` -> 0.5), None for ``nan`` and ``inf`` (no
    measurement: a REAL column reads NULL there, as for a blank cell), else the text itself."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else None


_BASE64 = re.compile(rb"[A-Za-z0-9+/=\s]+")


def _csv_text(body: bytes) -> str:
    """The CSV text of a result file, which the API has served as plain text, as base64 of it, and (as the
    spec declares the download) as a JSON string of either."""
    text = body.decode("utf-8-sig")
    if text.startswith('"'):
        try:
            decoded = json.loads(text)
        except ValueError:
            decoded = None
        if isinstance(decoded, str):
            text = decoded
    raw = text.encode()
    if raw.strip() and _BASE64.fullmatch(raw):
        # A result file's header has commas, which base64 never holds: a body of base64 characters only is
        # encoded, if it decodes to text that has them.
        try:
            decoded = base64.b64decode(raw, validate=False).decode("utf-8-sig")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if "," in decoded:
            text = decoded
    return text


def _csv_rows(body: bytes) -> list[dict[str, Any]]:
    """Each line of a CSV file with a header, as ``{"row": {column: value}}``: numbers as numbers, blank cells
    left out, every column kept whatever its name (reinforcement fine-tuning writes columns of its own).

    The line sits under ``"row"`` so that what the reading adds to each item (a ``Follow``'s value) stays apart
    from the file's own columns.
    """
    reader = csv.reader(io.StringIO(_csv_text(body)))
    header = next(reader, None)
    if header is None:
        return []
    names = [name.strip() for name in header]
    rows = []
    for line in reader:
        if not any(cell.strip() for cell in line):
            continue
        cells = ((name, _number(cell.strip())) for name, cell in zip(names, line, strict=False) if cell.strip())
        row = {name: value for name, value in cells if value is not None}
        rows.append({"row": row})
    return rows


JSON = Decoder("JSON", jsonfast.loads)
CSV = Decoder("CSV", _csv_rows)


@dataclass(frozen=True)
class Follow:
    """The rows live in a resource the table's own answer names: ``field`` (dotted, list indexes allowed, e.g.
    ``result_files.0``) holds its id, ``path`` is its URL with one ``{placeholder}`` for that id, and ``body``
    decodes it. The id is added to every item under the placeholder's name. No id: no rows.
    """

    field: str
    path: str
    body: Decoder = JSON

    @property
    def name(self) -> str:
        """The placeholder's name: the field each item gets the followed id in."""
        found = re.findall(r"\{(\w+)\}", self.path)
        if len(found) != 1:
            raise ValueError(f"Follow path {self.path!r} must hold exactly one {{placeholder}}")
        return found[0]


def pick(value: Any, dotted: str) -> Any:
    """The value at a dotted path of dict keys and list indexes (``result_files.0``), or None."""
    for part in dotted.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def items_at(body: Any, where: str) -> list[Any] | None:
    """The items at ``where`` in a decoded body (``"[]"``, ``"data[]"``, ``"data[].results[]"``), or None where a
    list is missing. The items of an inner list are copies that carry their container under ``"parent"``
    (without the inner list)."""
    outer, _, inner = where.partition("[].")
    value = body if outer in ("", "[]") else pick(body, outer.removesuffix("[]"))
    if not isinstance(value, list):
        return None
    if not inner:
        return value
    rows = []
    for container in value:
        nested = items_at(container, inner) if isinstance(container, dict) else None
        if nested is None:
            return None
        parent = {k: v for k, v in container.items() if k != inner.partition("[]")[0]}
        rows += [{**row, "parent": parent} if isinstance(row, dict) else row for row in nested]
    return rows
