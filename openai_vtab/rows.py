"""Turns API objects into SQLite rows, typed as each column declares.

This is the per-row hot path of every scan. SQLite applies no affinity to virtual-table columns, so the
declared types are enforced here (a JSON ``1`` in a REAL column must divide like ``1.0``; nested objects
become JSON text). To keep the cost near that of merely parsing the JSON, each table gets one generated
function that reads every column with inline expressions, rather than one Python call per column per row: a
value that already has its column's type, or is absent, never leaves that expression. JSON text is written by
``jsonfast.dumps`` (orjson, with exactly the standard library's text).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from .jsonfast import dumps as _to_json
from .tables import Column

__all__ = ["Row", "row_maker"]

Row = tuple[Any, ...]
_EMPTY: dict[str, Any] = {}


def _text(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return _to_json(value)
    return value  # None, str, or a number SQLite stores as it is


def _number(value: Any, kind: type) -> Any:
    if isinstance(value, (bool, int, float)):
        if kind is int and isinstance(value, float) and not value.is_integer():
            return value  # 2.5 in an INTEGER column stays 2.5, as SQLite itself would keep it
        return kind(value)
    return _text(value)


def _integer(value: Any) -> Any:
    return _number(value, int)


def _real(value: Any) -> Any:
    return _number(value, float)


# For each type: the expression when the value already has the right Python type or is absent (optional fields,
# such as most checkpoints' validation metrics, are absent on many rows), else a helper call.
_FAST = {
    "TEXT": "(v if (v := {get}) is None or v.__class__ is str else _text(v))",
    "INTEGER": "(v if (v := {get}).__class__ is int or v is None else _integer(v))",
    "REAL": "(v if (v := {get}).__class__ is float or v is None else _real(v))",
    "JSON": "(None if (v := {get}) is None else _to_json(v))",
}


def row_maker(
    columns: Sequence[Column], used: Collection[int] | None = None
) -> Callable[[dict[str, Any], tuple[Any, ...]], Row]:
    """A function ``(item, key) -> row``: the columns' values in order, then the key values.

    Columns not in ``used`` (SQLite's colUsed) are left NULL: a query never reads them.
    """
    parents: dict[tuple[str, ...], str] = {}
    lines = ["def make_row(item, key):", "    get = item.get"]
    values = []
    for index, column in enumerate(columns):
        if used is not None and index not in used:
            values.append("None")
            continue
        *parent, leaf = column.path
        if parent:
            name = parents.get(tuple(parent))
            if name is None:
                name = parents[tuple(parent)] = f"p{len(parents)}"
                lines.append(f"    {name} = item")
                for part in parent:
                    lines.append(f"    {name} = {name}.get({part!r}, None) if {name}.__class__ is dict else None")
                lines.append(f"    {name} = ({name} if {name}.__class__ is dict else _EMPTY).get")
            get = f"{name}({leaf!r})"
        else:
            get = f"get({leaf!r})"
        values.append(_FAST[column.type].format(get=get))
    lines.append(f"    return ({', '.join(values)}, *key)")
    namespace = {"_text": _text, "_integer": _integer, "_real": _real, "_to_json": _to_json, "_EMPTY": _EMPTY}
    exec("\n".join(lines), namespace)
    return namespace["make_row"]
