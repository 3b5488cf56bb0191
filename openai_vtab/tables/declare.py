"""How a table is declared: ``Column`` and ``Table``, values that read like the API reference they mirror.

Knows neither apsw nor HTTP. ``vtab.py`` turns each declaration into a virtual table and ``client.py`` fetches
its pages; the pure pieces a declaration names (paging styles, decoders, ``Follow``) are in ``paging.py``.

A ``{name}`` in a table's path makes ``name`` a required, hidden key column: its value comes from the query
(``WHERE name = ?``, ``IN (...)``, a join, or the table-valued form ``table('value')``) and goes into the URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..paging import AFTER_CURSOR, JSON, Decoder, Follow, Paging

__all__ = ["COLUMN_TYPES", "Column", "Table"]

COLUMN_TYPES = ("TEXT", "INTEGER", "REAL", "JSON")


@dataclass(frozen=True)
class Column:
    """One column of a table.

    ``source`` is the dotted path of the value in the API object (default: the column name). ``JSON``
    columns hold the value as JSON text. ``query_param`` names the API query parameter an ``=`` constraint
    on this column is pushed down to; SQLite still checks the rows, so the pushdown only saves traffic.
    """

    name: str
    type: str = "TEXT"
    source: str | None = None
    doc: str = ""
    query_param: str | None = None

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
class Table:
    """An OpenAI endpoint as a read-only SQL table.

    ``path`` is relative to the base URL; each ``{placeholder}`` is a required hidden key column.
    ``paging`` is how its answers come in pages (``paging.py``: ``AFTER_CURSOR`` takes ``limit``/``after`` and
    answers ``has_more``; ``NO_PAGING`` answers once), ``page_size`` the ``limit`` it asks for; ``body`` decodes
    an answer and ``items`` says where its rows are. ``follow``: the rows are in a resource the answer names
    (a job's result file). ``identity`` names the columns that tell rows of one key apart (rowids derive from
    them). ``key_doc`` describes the key columns for the README and for error messages. ``admin`` endpoints are
    called with the admin key (OPENAI_ADMIN_KEY) when one is set.
    """

    name: str
    path: str
    doc: str
    columns: tuple[Column, ...]
    example: str
    key_doc: dict[str, str] = field(default_factory=dict)
    paging: Paging = AFTER_CURSOR
    page_size: int = 100
    body: Decoder = JSON
    items: str = "data[]"
    follow: Follow | None = None
    identity: tuple[str, ...] = ("id",)
    admin: bool = False

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns] + list(self.keys)
        if len(names) != len(set(names)):
            raise ValueError(f"table {self.name}: duplicate column names in {names}")
        missing = [name for name in self.identity if name not in names]
        if missing or not self.identity:
            raise ValueError(f"table {self.name}: identity {self.identity} names no columns {missing}")

    @property
    def identity_columns(self) -> tuple[Column, ...]:
        """The columns of ``identity``, in table order."""
        return tuple(c for c in self.columns if c.name in self.identity)

    @property
    def keys(self) -> tuple[str, ...]:
        """The required hidden key columns, in path order (also the table-valued argument order)."""
        return tuple(re.findall(r"\{(\w+)\}", self.path))

    def schema(self) -> str:
        """The CREATE TABLE statement declared to SQLite."""
        cols = [f'"{c.name}" {c.sql_type}' for c in self.columns]
        cols += [f'"{k}" TEXT HIDDEN' for k in self.keys]
        return f'CREATE TABLE "{self.name}"({", ".join(cols)})'
