"""How a table is declared: ``Column`` and ``Table``, values that read like the API reference they mirror.

Knows neither apsw nor HTTP. ``vtab.py`` turns each declaration into a virtual table and ``client.py`` fetches
its pages; the pure pieces a declaration names (paging styles, decoders, ``Follow``) are in ``paging.py``.

A ``{name}`` in a table's path makes ``name`` a required, hidden key column: its value comes from the query
(``WHERE name = ?``, ``IN (...)``, a join, or the table-valued form ``table('value')``) and goes into the URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..paging import AFTER_CURSOR, JSON, Decoder, Follow, Paging

__all__ = ["COLUMN_TYPES", "Bound", "Column", "Option", "Table", "Writes"]

COLUMN_TYPES = ("TEXT", "INTEGER", "REAL", "JSON")
LOWER_OPS = frozenset({">", ">=", "="})
UPPER_OPS = frozenset({"<", "<=", "="})


@dataclass(frozen=True)
class Bound:
    """Comparisons on a numeric column (a time) that the API takes as a query parameter bounding a range.

    ``ops`` are the SQL operators sent as ``param``: lower bounds (``>=``, ``>``, ``=``) or upper bounds (``<=``,
    ``<``, ``=``), never both. The API's answer must hold every row such a comparison keeps (SQLite still checks
    each row), so a bound may be loose but never tighter: ``start_time > X`` goes out as ``start_time=X``.
    ``required``: the API refuses a request without this parameter, so a query that cannot give one fails
    before any request, saying what to add (``example``).
    """

    param: str
    ops: tuple[str, ...]
    required: bool = False
    example: str = ""

    def __post_init__(self) -> None:
        if not (set(self.ops) <= LOWER_OPS or set(self.ops) <= UPPER_OPS):
            raise ValueError(f"bound {self.param}: ops {self.ops} mix lower and upper bounds")

    @property
    def lower(self) -> bool:
        """True for a lower bound (several combine by their maximum), False for an upper one (their minimum)."""
        return bool(set(self.ops) & {">", ">="}) or not set(self.ops) & {"<", "<="}


@dataclass(frozen=True)
class Option:
    """A hidden column sent as the query parameter of the same name, ``default`` when the query gives no value
    (``= ?`` or ``IN (...)`` on it choose; ``choices`` are the values the API takes). Every row shows the value
    it was fetched with, so ``WHERE bucket_width = '1h'`` reads hourly buckets."""

    name: str
    default: str
    choices: tuple[str, ...]
    doc: str = ""


@dataclass(frozen=True)
class Column:
    """One column of a table.

    ``source`` is the dotted path of the value in the API object (default: the column name). ``JSON``
    columns hold the value as JSON text. ``query_param`` names the API query parameter an ``=`` constraint
    on this column is pushed down to; ``bounds`` the range parameters its comparisons are sent as. SQLite
    still checks the rows, so a pushdown only saves traffic.
    """

    name: str
    type: str = "TEXT"
    source: str | None = None
    doc: str = ""
    query_param: str | None = None
    bounds: tuple[Bound, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in COLUMN_TYPES:
            raise ValueError(f"column {self.name}: type must be one of {COLUMN_TYPES}, not {self.type!r}")

    @property
    def path(self) -> tuple[str, ...]:
        """The keys leading to this column's value inside an API object."""
        return tuple((self.source or self.name).split("."))

    @property
    def sql_type(self) -> str:
        """The type declared to SQLite (JSON is stored as TEXT)."""
        return "TEXT" if self.type == "JSON" else self.type


@dataclass(frozen=True)
class Writes:
    """The writes a table takes, each one API call per row; ``writes.py`` runs them and refuses anything else.

    ``noun`` names one row in messages (``fine-tuning job``). ``create``: INSERT sends POST to this path (a
    ``{key}`` is the row's hidden key column) with a JSON body of the ``create_columns`` the row gives (JSON
    columns as objects; a column in ``as_list`` goes as a one-item list under that name, ``project_id`` ->
    ``project_ids``); each value must have the spec's type (an INTEGER column an integer, a JSON column an object,
    or an array for a column in ``arrays``) and is checked before anything is sent; ``required`` columns must be
    given; ``created`` is where the answer holds the new objects
    (``""``: the answer is the object). A create is never sent twice unless the connection was never made;
    ``check`` is the SQL that shows whether one that got no clear answer happened. ``status``: ``UPDATE ... SET
    status = value`` sends POST to the path for that value (``{id}``: the row's id). ``delete``: DELETE sends
    DELETE to this path (``{id}`` and keys from the row).
    """

    noun: str
    create: str | None = None
    create_columns: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    as_list: Mapping[str, str] = field(default_factory=dict)
    created: str = ""
    arrays: tuple[str, ...] = ()
    check: str = ""
    status: Mapping[str, str] = field(default_factory=dict)
    delete: str | None = None

    @property
    def statements(self) -> tuple[str, ...]:
        """The SQL statements the table takes, for messages and docs: INSERT, UPDATE and/or DELETE."""
        taken = (("INSERT", self.create), ("UPDATE", self.status), ("DELETE", self.delete))
        return tuple(name for name, given in taken if given)

    def describe(self) -> str:
        """What the table takes, in words: ``INSERT (model, training_file, ...), UPDATE SET status = 'cancelled'``."""
        parts = []
        if self.create:
            parts.append(f"INSERT ({', '.join(self.create_columns)})")
        if self.status:
            parts.append(f"UPDATE SET status = {' | '.join(repr(value) for value in self.status)}")
        if self.delete:
            parts.append("DELETE")
        return ", ".join(parts)


@dataclass(frozen=True)
class Table:
    """An OpenAI endpoint as a read-only SQL table.

    ``path`` is relative to the base URL; each ``{placeholder}`` is a required hidden key column.
    ``options`` are optional hidden columns sent as query parameters, ``params`` parameters sent with every
    request (the finest ``group_by``). ``paging`` is how its answers come in pages (``paging.py``), ``page_size``
    the ``limit`` it asks for (a mapping: per value of its first option, e.g. per bucket width); ``body``
    decodes an answer and ``items`` says where its rows are. ``follow``: the rows are in a resource the answer names
    (a job's result file). ``identity`` names the columns that tell rows of one key apart (rowids derive from
    them). ``key_doc`` describes the key columns for the README and for error messages. ``admin`` endpoints are
    called with the admin key (OPENAI_ADMIN_KEY) when one is set. ``writes``: what INSERT, UPDATE and DELETE
    send (``Writes``), for tables that take any; only with ``register(allow_writes=True)``.
    """

    name: str
    path: str
    doc: str
    columns: tuple[Column, ...]
    example: str
    key_doc: dict[str, str] = field(default_factory=dict)
    options: tuple[Option, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    paging: Paging = AFTER_CURSOR
    page_size: int | Mapping[str, int] = 100
    body: Decoder = JSON
    items: str = "data[]"
    follow: Follow | None = None
    identity: tuple[str, ...] = ("id",)
    admin: bool = False
    writes: Writes | None = None

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns] + list(self.hidden)
        if len(names) != len(set(names)):
            raise ValueError(f"table {self.name}: duplicate column names in {names}")
        missing = [name for name in self.identity if name not in names]
        if missing or not self.identity:
            raise ValueError(f"table {self.name}: identity {self.identity} names no columns {missing}")
        if self.writes is not None:
            named = set(self.writes.create_columns) | set(self.writes.required) | set(self.writes.as_list)
            if named - set(names) or (self.writes.status and "status" not in names):
                raise ValueError(f"table {self.name}: writes name columns it lacks: {sorted(named - set(names))}")

    @property
    def keys(self) -> tuple[str, ...]:
        """The required hidden key columns, in path order (also the table-valued argument order)."""
        return tuple(re.findall(r"\{(\w+)\}", self.path))

    @property
    def required_bounds(self) -> tuple[tuple[str, Bound], ...]:
        """(column, bound) for each bound the API requires (a query must give a lower bound on ``start_time``)."""
        return tuple((c.name, bound) for c in self.columns for bound in c.bounds if bound.required)

    @property
    def hidden(self) -> tuple[str, ...]:
        """Every hidden column: the required keys, then the options (the table-valued argument order)."""
        return self.keys + tuple(option.name for option in self.options)

    def limit(self, option_value: str | None) -> int:
        """The page size to ask for, given the value of the first option (``page_size`` may depend on it)."""
        if isinstance(self.page_size, int):
            return self.page_size
        return self.page_size[option_value or self.options[0].default]

    def schema(self) -> str:
        """The CREATE TABLE statement declared to SQLite."""
        cols = [f'"{c.name}" {c.sql_type}' for c in self.columns]
        cols += [f'"{k}" TEXT HIDDEN' for k in self.hidden]
        return f'CREATE TABLE "{self.name}"({", ".join(cols)})'
