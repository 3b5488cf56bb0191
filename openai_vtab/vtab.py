"""The one generic apsw virtual-table module that runs any ``Table`` declaration.

Planning follows rules found by experiment (DESIGN.md has the list):

* BestIndexObject, not BestIndex: only it sees IN lists, LIMIT/OFFSET and unusable constraints.
* An ``=`` (with BINARY collation) on a required key gets an argvIndex and ``omit``; an IN list is taken whole
  (``set_aConstraintUsage_in``) so Filter gets every key at once and can fetch them concurrently.
* A plan that lacks a required key is never rejected in BestIndexObject (apsw would keep the exception
  pending and break joins and ORs that have a valid plan); it is accepted at an enormous cost so SQLite
  prefers any plan that supplies the key, and Filter raises a clear error if it is still chosen.
* No order is ever claimed: the API promises none, and rows of several keys are concatenated.
* LIMIT is only a hint for the first page size, and only without ORDER BY: SQLite still applies it.
* Rowids come from a hash of the keys and the object id, so a MULTI-INDEX OR de-duplicates correctly.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Sequence
from itertools import product
from typing import Any

import apsw

from .client import Pager
from .errors import InvalidKeyError, MissingRequiredKeyError, NotFoundError, UnknownKeyWarning
from .fetch import RowStream, Source
from .registration import Registration
from .rows import Row, row_maker
from .tables import Table

__all__ = ["TableModule"]

# Costs only need the right order of magnitude relative to each other and to local tables.
COST_PER_KEY = 1_000.0
COST_SCAN = 100_000.0
COST_MISSING_KEY = 1e30
MISSING_KEY = 1
# Ids are short; anything longer can only be a mistake, and some servers answer 414 for long URLs.
MAX_KEY_LENGTH = 512


class TableModule:
    """An apsw VTModule for one Table; eponymous-only, so Connect is all SQLite calls."""

    def __init__(self, table: Table, registration: Registration) -> None:
        self.table = table
        self.registration = registration

    def Connect(  # noqa: N802 - apsw's method names
        self, connection: apsw.Connection, modulename: str, databasename: str, tablename: str, *args: str
    ) -> tuple[str, VirtualTable]:
        """Declare the table's schema to SQLite."""
        return self.table.schema(), VirtualTable(self.table, self.registration)


class VirtualTable:
    """Plans queries (BestIndexObject) and opens cursors for one Table."""

    def __init__(self, table: Table, registration: Registration) -> None:
        self.table = table
        self.registration = registration
        self.key_index = {name: len(table.columns) + i for i, name in enumerate(table.keys)}
        names = [c.name for c in table.columns]
        self.identity_index = tuple(names.index(name) for name in table.identity)
        self.param_index = {i: c for i, c in enumerate(table.columns) if c.query_param}
        self._row_makers: dict[frozenset[int], Callable[[dict[str, Any], tuple[Any, ...]], Row]] = {}

    def row_maker(self, used: frozenset[int]) -> Callable[[dict[str, Any], tuple[Any, ...]], Row]:
        """The row function for the columns a statement reads (the identity is always read: rowids need it)."""
        maker = self._row_makers.get(used)
        if maker is None:
            maker = self._row_makers[used] = row_maker(self.table.columns, used | set(self.identity_index))
        return maker

    def BestIndexObject(self, info: apsw.IndexInfo) -> bool:  # noqa: N802
        """Choose which constraints reach Filter; see the module docstring for the rules."""
        plan: list[list[Any]] = []
        keys_seen: set[int] = set()
        params_seen: set[int] = set()
        limit_ops = (apsw.SQLITE_INDEX_CONSTRAINT_LIMIT, apsw.SQLITE_INDEX_CONSTRAINT_OFFSET)
        has_in = False
        # A key constrained both by a join's = and by an IN list must take the =: given the IN set, every row of
        # the outer loop would fetch the whole set again. SQLite checks the constraint left unused.
        for i in sorted(range(info.nConstraint), key=info.get_aConstraintUsage_in):
            if not info.get_aConstraint_usable(i):
                continue
            column, op = info.get_aConstraint_iColumn(i), info.get_aConstraint_op(i)
            # An id's equality is byte equality: under another collation (NOCASE...) the API cannot answer.
            binary = info.get_aConstraint_collation(i) == "BINARY"
            if op == apsw.SQLITE_INDEX_CONSTRAINT_EQ and binary and column in self.key_index.values():
                if column in keys_seen:
                    continue
                keys_seen.add(column)
                whole_in = info.get_aConstraintUsage_in(i)
                if whole_in:
                    info.set_aConstraintUsage_in(i, True)
                    has_in = True
                plan.append(["key", column - len(self.table.columns), whole_in])
                info.set_aConstraintUsage_omit(i, True)
            elif op == apsw.SQLITE_INDEX_CONSTRAINT_EQ and binary and column in self.param_index:
                if column in params_seen:
                    continue
                params_seen.add(column)
                plan.append(["param", self.param_index[column].query_param])
            elif op in limit_ops and info.nOrderBy == 0:
                plan.append(["limit" if op == apsw.SQLITE_INDEX_CONSTRAINT_LIMIT else "offset"])
            else:
                continue
            info.set_aConstraintUsage_argvIndex(i, len(plan))

        if len(keys_seen) < len(self.table.keys):
            info.idxNum = MISSING_KEY
            info.estimatedCost = COST_MISSING_KEY
            info.estimatedRows = 2**62
        else:
            info.idxNum = 0
            # Cost counts round trips: an IN set is fetched concurrently, a couple of rounds for a typical
            # list, so SQLite prefers handing this table the whole set once over looping it key by key.
            cost = COST_PER_KEY * (2 if has_in else 1) if self.table.keys else COST_SCAN
            info.estimatedCost = cost / (1 + len(params_seen))
            info.estimatedRows = 1_000 if not self.table.keys else 200 if has_in else 100
        info.idxStr = json.dumps({"plan": plan, "used": sorted(info.colUsed)})
        return True

    def Open(self) -> Cursor:  # noqa: N802
        """A new cursor; Filter starts it."""
        return Cursor(self)

    def Disconnect(self) -> None:  # noqa: N802
        """The connection is closing (or the table was registered again): stop what is still fetching."""
        self.registration.abandon()


class Cursor:
    """Walks the rows of one Filter call; Filter may be called again for each row of an outer loop."""

    def __init__(self, vtable: VirtualTable) -> None:
        self.vtable = vtable
        self.table = vtable.table
        self.registration = vtable.registration
        self._stream: RowStream | None = None
        self._rows: list[Row] = []
        self._pos = 0
        self._ncols = len(self.table.columns)
        self._identity = vtable.identity_index

    def Filter(self, indexnum: int, indexname: str, constraintargs: Sequence[Any]) -> None:  # noqa: N802
        """Start a fresh scan for the keys SQLite passes; everything from an earlier scan is dropped."""
        self._reset()
        if indexnum == MISSING_KEY:
            raise MissingRequiredKeyError(self._missing_key_message())
        keys: list[list[Any]] = [[] for _ in self.table.keys]
        params: dict[str, str] = {}
        limit = offset = None
        decoded = json.loads(indexname)
        self._make_row = self.vtable.row_maker(frozenset(decoded["used"]))
        for step, value in zip(decoded["plan"], constraintargs, strict=True):
            kind = step[0]
            if kind == "key":
                keys[step[1]] = self._key_values(step[1], value, step[2])
            elif kind == "param":
                if value is None:
                    return  # col = NULL is never true
                params[step[1]] = value if isinstance(value, str) else str(value)
            elif kind == "limit":
                limit = value
            else:
                offset = value
        if not any(step[0] == "key" and step[2] for step in decoded["plan"]) and self.table.keys:
            self.registration.single_key_scans[self.table.name] += 1
        first_page = None
        if isinstance(limit, int) and limit >= 0:
            wanted = limit + (offset if isinstance(offset, int) and offset > 0 else 0)
            if wanted < self.table.page_size:
                first_page = max(1, wanted)
        sources = [
            Source(
                key,
                Pager(
                    self.registration.client,
                    self.table,
                    dict(zip(self.table.keys, key, strict=True)),
                    params,
                    first_page_size=first_page,
                ),
            )
            for key in product(*keys)
        ]
        self._stream = RowStream(
            sources,
            self.registration.executor,
            window=self.registration.max_workers,
            poll=self.registration.poll,
            on_not_found=self._not_found,
            to_rows=self._to_rows,
        )
        self._advance_page()

    def _to_rows(self, source: Source, items: list[dict[str, Any]]) -> list[Row]:
        """Each item as the full row SQLite sees: the visible columns, then the hidden keys."""
        make_row, key = self._make_row, source.key
        return [make_row(item, key) for item in items]

    def _key_values(self, index: int, value: Any, whole_in: bool) -> list[str]:
        values = sorted(value, key=lambda v: (type(v).__name__, v)) if whole_in else [value]
        name = self.table.keys[index]
        usable = []
        for v in values:
            if v is None:
                continue  # NULL = anything is never true: no rows, no request
            if not isinstance(v, str):
                raise InvalidKeyError(
                    f"{self.table.name}: {name} must be text ({self.table.key_doc.get(name, 'an id')}), "
                    f"not {_sql_type(v)} {_short(v)}: quote the value, or CAST it AS TEXT if it really is an id"
                )
            if v in ("", ".", "..") or len(v) > MAX_KEY_LENGTH:
                # Also "." and "..": URL normalisation would turn them into another route, whatever the encoding.
                self._warn_unknown(name, v, f"no id is empty, '.', '..' or longer than {MAX_KEY_LENGTH} characters")
                continue
            usable.append(v)
        return usable

    def _not_found(self, source: Source, error: NotFoundError) -> None:
        # Only the API's own "no such object" is about the key. A 404 on a keyless list, one without the API's
        # error envelope, or the API's "Invalid URL" means a wrong base URL: that must fail, not look empty.
        if not self.table.keys or error.type is None or error.message.find("Invalid URL") >= 0:
            raise error
        names = ", ".join(f"{k}={v!r}" for k, v in zip(self.table.keys, source.key, strict=True))
        self._warn_unknown(names, None, "the API answered HTTP 404; check the id")

    def _warn_unknown(self, name: str, value: str | None, why: str) -> None:
        what = name if value is None else f"{name}={_short(value)}"
        warnings.warn(
            UnknownKeyWarning(f"{self.table.name}: no rows for unknown {what}: {why}"),
            stacklevel=2,
        )

    def _missing_key_message(self) -> str:
        keys = self.table.keys
        name = keys[0] if len(keys) == 1 else " and ".join(keys)
        example = self.table.key_doc.get(keys[0], "an id")
        return (
            f"{self.table.name} needs {name}: the API lists rows only per {name}, and this query gives SQLite "
            f"no way to pass it (LIKE, ranges, != and OR branches without it cannot). Add "
            f"WHERE {keys[0]} = '...' ({example}), or {keys[0]} IN (...), or join ON {keys[0]} = other.column, "
            f"or use the table-valued form {self.table.name}('...')"
        )

    def _reset(self) -> None:
        if self._stream is not None:
            self._stream.close()
        self._stream = None
        self._rows = []
        self._pos = 0

    def _advance_page(self) -> None:
        batch = self._stream.next_batch() if self._stream is not None else None
        self._rows, self._pos = batch or [], 0

    def Eof(self) -> bool:  # noqa: N802
        """True when the scan has no current row."""
        return self._pos >= len(self._rows)

    def Next(self) -> None:  # noqa: N802
        """Move to the next row, fetching the next page only when this one is used up."""
        self._pos += 1
        if self._pos >= len(self._rows):
            self._advance_page()

    def Column(self, number: int) -> Any:  # noqa: N802
        """The value of column ``number`` (-1 is the rowid) of the current row."""
        if number < 0:
            return self.Rowid()
        return self._rows[self._pos][number]

    def Rowid(self) -> int:  # noqa: N802
        """A stable 63-bit id from the keys and the row's identity (its id), the same in every Filter call."""
        row = self._rows[self._pos]
        ident = "\x00".join((*row[self._ncols :], *(str(row[i]) for i in self._identity)))
        return int.from_bytes(hashlib.blake2b(ident.encode(), digest_size=8).digest(), "big") >> 1

    def Close(self) -> None:  # noqa: N802
        """Release the scan."""
        self._reset()


def _sql_type(value: Any) -> str:
    return {int: "an integer", float: "a real", bytes: "a blob"}.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}...{text[-10:]} ({len(value)} characters)"
