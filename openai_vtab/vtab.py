"""The one generic apsw virtual-table module that runs any ``Table`` declaration.

Planning follows rules found by experiment (DESIGN.md has the list):

* BestIndexObject, not BestIndex: only it sees IN lists, LIMIT/OFFSET and unusable constraints.
* An ``=`` (with BINARY collation) on a required key gets an argvIndex and ``omit``; an IN list is taken whole
  (``set_aConstraintUsage_in``) so Filter gets every key at once and can fetch them concurrently.
* An IN set may be empty. apsw before 3.54 then passes None, a fixed apsw an empty set; apsw 3.54.0 and
  3.54.1 fail the statement before Filter runs (contrib/apsw_empty_in_repro.py), so where a probe finds that
  behaviour, IN lists are taken one key at a time instead: slower, but right.
* A plan that lacks a required key is never rejected in BestIndexObject (apsw would keep the exception
  pending and break joins and ORs that have a valid plan); it is accepted at a cost that loses to every
  plan that supplies the key (see ``ROWS_MISSING_KEY``), and Filter raises a clear error if it is still chosen.
* No order is ever claimed: the API promises none, and rows of several keys are concatenated.
* LIMIT is only a hint for the first page size, and only without ORDER BY: SQLite still applies it.
* Rowids come from a hash of the keys and the object id, so a MULTI-INDEX OR de-duplicates correctly.
* ``=`` (BINARY, also as a whole IN list), ``IS NULL`` and ``IS NOT NULL`` on a visible column are taken as
  checks, never omitted: the cursor drops only the rows SQLite would surely drop, so that a join's inner table
  reads ahead (readahead.py) for the rows SQLite will see.
* The plan travels to Filter as idxStr, written for people: EXPLAIN QUERY PLAN shows it
  (``key fine_tuning_job_id IN; used: id, step_number``, or ``MISSING fine_tuning_job_id: will fail``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from itertools import product
from typing import Any

import apsw

from .client import Pager
from .errors import (
    GoneWarning,
    InvalidKeyError,
    MissingRequiredKeyError,
    NotFoundError,
    UnknownKeyWarning,
    WriteRefusedError,
    warn,
)
from .fetch import RowStream, Source, fetch_rows
from .readahead import Follower, Leader, SpeculationPool, shared_budget
from .registration import Registration
from .rows import Row, row_maker
from .tables import Bound, Table
from .writes import ALLOW_WRITES, TableWriter, stable_rowid

__all__ = ["Plan", "Step", "TableModule"]

# Costs count round trips; they only need the right order of magnitude relative to each other and to the
# costs SQLite gives local tables (about one unit per row).
COST_PER_KEY = 1_000.0
COST_SCAN = 100_000.0
# A plan without its required key must lose to every plan that supplies it, in every join order SQLite
# tries. The penalty lives in the row estimate: SQLite charges each loop nested inside a scan for every row
# the scan yields, so after a keyless scan of 2**62 rows any table costs more than a whole real plan. Its
# own run cost stays moderate (still far above a keyed plan's): SQLite's star-query heuristic (3.49 and
# later) raises the full-scan costs of the tables joined around one table to that table's dearest plan, so
# a run cost of 1e30 made every order that supplies the key dearer than the keyless one that fails.
COST_MISSING_KEY = 1e9
ROWS_MISSING_KEY = 2**62
# Ids are short; anything longer can only be a mistake, and some servers answer 414 for long URLs.
MAX_KEY_LENGTH = 512

# SQLite's comparison operators that a column's bounds may take (tables/declare.py: Bound).
OPERATORS = {
    apsw.SQLITE_INDEX_CONSTRAINT_EQ: "=",
    apsw.SQLITE_INDEX_CONSTRAINT_GT: ">",
    apsw.SQLITE_INDEX_CONSTRAINT_GE: ">=",
    apsw.SQLITE_INDEX_CONSTRAINT_LT: "<",
    apsw.SQLITE_INDEX_CONSTRAINT_LE: "<=",
}
# How a plan names a required bound no constraint gives (after MISSING, next to key names).
BOUND_MISSING = "lower bound on "

# Constraints on a visible column that the cursor checks on its own rows, exactly as SQLite would, never omitted
# (SQLite checks them again): rows SQLite would drop are then never seen, nor read ahead for by a join's inner
# table. Only what Python decides exactly as SQLite does: LIKE is left out, as its case rules and a user's own
# like() are SQLite's business.
CHECKS = {
    apsw.SQLITE_INDEX_CONSTRAINT_EQ: "=",
    apsw.SQLITE_INDEX_CONSTRAINT_ISNULL: "IS NULL",
    apsw.SQLITE_INDEX_CONSTRAINT_ISNOTNULL: "IS NOT NULL",
}
CHECK_IN = "IN"  # an = that is an IN list, handed over whole as a set

# How a key reaches Filter (the words EXPLAIN QUERY PLAN shows after the key's name).
KEY_EQ = ""
KEY_IN = "IN"
KEY_IN_ONE_BY_ONE = "IN, one key at a time"


@dataclass(frozen=True)
class Step:
    """One value Filter receives, in argv order: ``kind`` is key, param, bound, check, limit or offset.

    ``name`` is the key or column; ``how`` says how a key arrives (``KEY_EQ``, ``KEY_IN``: the whole IN set,
    ``KEY_IN_ONE_BY_ONE``: an IN list SQLite hands over one value per Filter call), or a bound's or a check's
    operator.
    """

    kind: str
    name: str = ""
    how: str = KEY_EQ

    def __str__(self) -> str:
        return " ".join(part for part in (self.kind, self.name, self.how) if part)


@dataclass(frozen=True)
class Plan:
    """What BestIndexObject chose, written into idxStr for Filter and for people reading EXPLAIN QUERY PLAN.

    ``steps`` are Filter's arguments in order, ``used`` the visible columns the statement reads, ``missing``
    the required keys no constraint supplies (Filter then fails). Names are the tables' column identifiers,
    which hold no ``;`` or ``,``.
    """

    steps: tuple[Step, ...]
    used: tuple[str, ...]
    missing: tuple[str, ...] = ()

    def __str__(self) -> str:
        parts = [f"MISSING {', '.join(self.missing)}: will fail"] if self.missing else []
        parts += [str(step) for step in self.steps]
        parts.append(f"used: {', '.join(self.used) or '(none)'}")
        return "; ".join(parts)

    @classmethod
    def parse(cls, text: str) -> Plan:
        """The plan ``str(plan)`` wrote."""
        steps: list[Step] = []
        used: tuple[str, ...] = ()
        missing: tuple[str, ...] = ()
        for part in text.split("; "):
            if part.startswith("MISSING "):
                missing = tuple(part[len("MISSING ") : -len(": will fail")].split(", "))
            elif part.startswith("used: "):
                names = part[len("used: ") :]
                used = () if names == "(none)" else tuple(names.split(", "))
            else:
                kind, _, rest = part.partition(" ")
                name, _, how = rest.partition(" ")
                steps.append(Step(kind, name, how))
        return cls(tuple(steps), used, missing)


@functools.cache
def whole_in_sets_work() -> bool:
    """Whether this apsw lets Filter see an empty IN set (None before 3.54, else ``set()``).

    apsw 3.54.0 and 3.54.1 fail such a statement before Filter runs, with ``SQLError('<NULL>')``
    (contrib/apsw_empty_in_repro.py), and nothing a table does can catch it. Asked once per process, of a
    throwaway table on a private in-memory connection.
    """
    received: list[Any] = []
    probe = apsw.Connection(":memory:")
    try:
        probe.create_module("probe", _ProbeModule(received), use_bestindex_object=True, eponymous_only=True)
        probe.execute("SELECT v FROM probe WHERE k IN (SELECT 1 WHERE 0)").fetchall()
    except apsw.SQLError:
        return False
    finally:
        probe.close()
    return received in ([None], [set()])


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
        # SQLite numbers the visible columns first, then the hidden ones (keys, then options).
        self.names = [c.name for c in table.columns] + list(table.hidden)
        self.column_index = {c.name: i for i, c in enumerate(table.columns)}
        self.options = {option.name: option for option in table.options}
        # (column, SQL operator) -> the bound it is sent as.
        self.bounds = {(c.name, op): bound for c in table.columns for bound in c.bounds for op in bound.ops}
        self.identity_index = tuple(self.column_index[name] for name in table.identity)
        self.params = {c.name: c.query_param for c in table.columns if c.query_param}
        self.whole_in = whole_in_sets_work()
        self._plans: dict[str, Plan] = {}
        self._row_makers: dict[frozenset[int], Callable[[dict[str, Any], tuple[Any, ...]], Row]] = {}
        self.writer = TableWriter(table, registration, self.names) if table.writes is not None else None

    def plan(self, text: str) -> Plan:
        """The plan an idxStr describes (parsed once: Filter runs again for every row of an outer loop)."""
        plan = self._plans.get(text)
        if plan is None:
            plan = self._plans[text] = Plan.parse(text)
        return plan

    def row_maker(self, used: frozenset[int]) -> Callable[[dict[str, Any], tuple[Any, ...]], Row]:
        """The row function for the columns a statement reads (the identity is always read: rowids need it)."""
        maker = self._row_makers.get(used)
        if maker is None:
            maker = self._row_makers[used] = row_maker(self.table.columns, used | set(self.identity_index))
        return maker

    def BestIndexObject(self, info: apsw.IndexInfo) -> bool:  # noqa: N802
        """Choose which constraints reach Filter; see the module docstring for the rules."""
        steps: list[Step] = []
        checks: list[tuple[int, Step]] = []  # taken last, and only by a plan that can run
        limit_ops = (apsw.SQLITE_INDEX_CONSTRAINT_LIMIT, apsw.SQLITE_INDEX_CONSTRAINT_OFFSET)

        # A key constrained both by a join's = and by an IN list must take the =: given the IN set, every row of
        # the outer loop would fetch the whole set again. SQLite checks the constraint left unused. LIMIT and
        # OFFSET come last, so that the plan reads in the order of the SQL.
        def order(i: int) -> tuple[bool, bool, int]:
            op = info.get_aConstraint_op(i)
            return op in limit_ops, info.get_aConstraintUsage_in(i), op

        for i in sorted(range(info.nConstraint), key=order):
            if not info.get_aConstraint_usable(i):
                continue
            column, op = info.get_aConstraint_iColumn(i), info.get_aConstraint_op(i)
            name = self.names[column] if column >= 0 else ""
            # An id's equality is byte equality: under another collation (NOCASE...) the API cannot answer.
            equal = op == apsw.SQLITE_INDEX_CONSTRAINT_EQ and info.get_aConstraint_collation(i) == "BINARY"
            if equal and name in self.names[len(self.table.columns) :]:
                if any(step.name == name for step in steps):
                    continue
                how = KEY_EQ
                if info.get_aConstraintUsage_in(i):
                    how = KEY_IN if self.whole_in else KEY_IN_ONE_BY_ONE
                    info.set_aConstraintUsage_in(i, self.whole_in)
                steps.append(Step("key", name, how))
                info.set_aConstraintUsage_omit(i, True)
            elif equal and name in self.params:
                if any(step.name == name for step in steps):
                    continue
                steps.append(Step("param", name))
            elif (name, OPERATORS.get(op)) in self.bounds:
                # Never omitted: the API's answer is a superset that SQLite narrows to what the query keeps.
                steps.append(Step("bound", name, OPERATORS[op]))
            elif (
                op in CHECKS
                and name in self.column_index
                and (op != apsw.SQLITE_INDEX_CONSTRAINT_EQ or info.get_aConstraint_collation(i) == "BINARY")
                # An IN list is taken whole or not at all: one value per Filter would run the scan once per value.
                and (self.whole_in or not info.get_aConstraintUsage_in(i))
            ):
                how = CHECKS[op]
                if info.get_aConstraintUsage_in(i):
                    how = CHECK_IN
                    info.set_aConstraintUsage_in(i, True)
                checks.append((i, Step("check", name, how)))
                continue
            elif op in limit_ops and info.nOrderBy == 0:
                steps.append(Step("limit" if op == apsw.SQLITE_INDEX_CONSTRAINT_LIMIT else "offset"))
            else:
                continue
            info.set_aConstraintUsage_argvIndex(i, len(steps))

        keys_given = {step.name for step in steps if step.kind == "key"}
        bounded = {self.bounds[step.name, step.how].param for step in steps if step.kind == "bound"}
        missing = tuple(key for key in self.table.keys if key not in keys_given) + tuple(
            f"{BOUND_MISSING}{column}" for column, bound in self.table.required_bounds if bound.param not in bounded
        )
        if not missing:
            for i, step in checks:
                steps.append(step)
                info.set_aConstraintUsage_argvIndex(i, len(steps))
        if missing:
            info.estimatedCost = COST_MISSING_KEY
            info.estimatedRows = ROWS_MISSING_KEY
        else:
            # Cost counts round trips: an IN set is fetched concurrently, a couple of rounds for a typical
            # list, so SQLite prefers handing this table the whole set once over looping it key by key.
            has_in = any(step.how == KEY_IN for step in steps)
            params = sum(step.kind == "param" for step in steps)
            cost = COST_PER_KEY * (2 if has_in else 1) if self.table.keys else COST_SCAN
            info.estimatedCost = cost / (1 + params + len(bounded))
            info.estimatedRows = 1_000 if not self.table.keys else 200 if has_in else 100
        used = tuple(self.names[i] for i in sorted(info.colUsed) if i < len(self.table.columns))
        info.idxStr = str(Plan(tuple(steps), used, missing))
        return True

    def Open(self) -> Cursor:  # noqa: N802
        """A new cursor; Filter starts it."""
        return Cursor(self)

    def Disconnect(self) -> None:  # noqa: N802
        """The connection is closing (or the table was registered again): stop what is still fetching."""
        self.registration.abandon()

    # Writes: only tables that declare some are registered writable, and WriteGuard has refused at prepare time
    # whatever may not run; writes.py does the rest.

    def UpdateInsertRow(self, rowid: int | None, fields: tuple[Any, ...]) -> int:  # noqa: N802
        """INSERT: create the object the row describes; its rowid."""
        return self._writer().insert(fields, rowid)

    def UpdateChangeRow(self, row: int, newrowid: int, fields: tuple[Any, ...]) -> None:  # noqa: N802
        """UPDATE of one row (its status)."""
        self._writer().change(row, fields, newrowid)

    def UpdateDeleteRow(self, rowid: int) -> None:  # noqa: N802
        """DELETE of one row."""
        self._writer().delete(rowid)

    def Begin(self) -> None:  # noqa: N802
        """A write transaction starts."""
        if self.writer is not None:
            self.writer.begin()

    def Sync(self) -> None:  # noqa: N802
        """Nothing to flush: every write was sent when SQLite asked for it."""

    def Commit(self) -> None:  # noqa: N802
        """The write transaction ended."""
        if self.writer is not None:
            self.writer.end()

    def Rollback(self) -> None:  # noqa: N802
        """The write transaction failed; the API calls already made stay made (SQLite cannot undo them)."""
        if self.writer is not None:
            self.writer.end(rolled_back=True)

    def _writer(self) -> TableWriter:
        # WriteGuard is only the connection's authorizer, which the user may replace after register(): so writes
        # being on is checked again here, and TableWriter checks each row itself (an UPDATE may change status only).
        if self.writer is None or not self.registration.allow_writes:
            raise WriteRefusedError(
                f"{self.table.name}: writes to the OpenAI API are off, so nothing was sent: allow them with "
                f"{ALLOW_WRITES}"
            )
        return self.writer


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
        self._checks: list[tuple[int, str, Any]] = []
        # Numbers the rows this cursor stands on, across Filter calls, so that read-ahead can tell which of the
        # rows it guessed from SQLite has passed by.
        self._row_number = 0
        # As a join's outer cursor: the keys inner tables read ahead from its rows, within the waste budget of
        # the statement (shared with the cursors open now). As an inner one: the link.
        self.ahead = Leader(shared_budget(self.registration.cursors, self.registration.max_workers))
        self._follower = Follower(self, self.registration.max_workers)
        self.registration.cursors.add(self)

    def Filter(self, indexnum: int, indexname: str, constraintargs: Sequence[Any]) -> None:  # noqa: N802
        """Start a fresh scan for the keys SQLite passes; everything from an earlier scan is dropped."""
        self._reset()
        plan = self.vtable.plan(indexname)
        if plan.missing:
            raise MissingRequiredKeyError(self._missing_key_message(plan.missing))
        keys: dict[str, list[str]] = {name: [option.default] for name, option in self.vtable.options.items()}
        params: dict[str, Any] = {}
        checks: list[tuple[int, str, Any]] = []
        bounds: dict[Bound, list[int]] = {}
        limit = offset = None
        self._make_row = self.vtable.row_maker(frozenset(self.vtable.column_index[name] for name in plan.used))
        for step, value in zip(plan.steps, constraintargs, strict=True):
            if step.kind == "key":
                keys[step.name] = self._key_values(step.name, value, step.how == KEY_IN)
            elif step.kind == "param":
                if value is None:
                    return  # col = NULL is never true
                params[self.vtable.params[step.name]] = value if isinstance(value, str) else str(value)
            elif step.kind == "bound":
                if value is None:
                    return  # a comparison with NULL is never true
                bounds.setdefault(self.vtable.bounds[step.name, step.how], []).append(self._bound_value(step, value))
            elif step.kind == "check":
                if (step.how == "=" and value is None) or (step.how == CHECK_IN and not value):
                    return  # col = NULL, and col IN of an empty set (None from apsw 3.45-3.53), are never true
                if step.how == CHECK_IN:
                    # Only a set of texts can drop a text cell here; with other members, only NULL cells go.
                    value = frozenset(value) if all(v.__class__ is str for v in value) else None
                if step.name in plan.used:  # a column the statement never reads is left NULL in the rows
                    checks.append((self.vtable.column_index[step.name], step.how, value))
            elif step.kind == "limit":
                limit = value
            else:
                offset = value
        for bound, values in bounds.items():
            # All the comparisons hold for every row kept: the tightest is still a superset of the answer.
            params[bound.param] = max(values) if bound.lower else min(values)
        for name, option in self.vtable.options.items():
            wrong = [v for v in keys[name] if v not in option.choices]
            if wrong:
                raise InvalidKeyError(
                    f"{self.table.name}: {name} must be one of {', '.join(map(repr, option.choices))}, not "
                    f"{_short(wrong[0])}; without a value it is {option.default!r}"
                )
        first_page = None
        if isinstance(limit, int) and limit >= 0:
            wanted = limit + (offset if isinstance(offset, int) and offset > 0 else 0)
            if isinstance(self.table.page_size, int) and wanted < self.table.page_size:
                first_page = max(1, wanted)

        def source(key: tuple[str, ...]) -> Source:
            pager = Pager(
                self.registration.client,
                self.table,
                dict(zip(self.table.keys, key, strict=False)),  # the keys, then the options' values
                {**params, **dict(zip(self.vtable.options, key[len(self.table.keys) :], strict=True))},
                first_page_size=first_page,
            )
            return Source(key, pager)

        # Taken first: its abandon event is the one read-ahead's requests must see too.
        executor = self.registration.executor
        sources = [source(key) for key in product(*(keys[name] for name in self.table.hidden))]
        # Checks only filter rows on this thread, so the rows a key's first page gives are the same with them.
        given = [step for step in plan.steps if step.kind != "check"]
        one_key = len(given) == 1 and given[0].kind == "key" and given[0].how == KEY_EQ
        from_our_table = False
        if one_key and len(self.table.hidden) == 1 and len(sources) == 1:
            pool = self.registration.speculation
            start = None if pool is None else functools.partial(self._guess, pool, source, self._make_row)
            from_our_table, ahead = self._follower.first_source(self.registration.cursors, sources[0].key[0], start)
            sources = [ahead or sources[0]]
        # A join's inner loop hands keys over one by one: the shell counts the scans whose key came from a table of
        # the user's own (ours read ahead) to suggest an IN list.
        if self.table.keys and all(step.how == KEY_EQ for step in given) and not from_our_table:
            self.registration.single_key_scans[self.table.name] += 1
        self._checks = checks
        self._stream = RowStream(
            sources,
            executor,
            window=self.registration.max_workers,
            poll=self.registration.poll,
            on_not_found=self._not_found,
            to_rows=self._to_rows,
        )
        self._advance_page()

    def _guess(
        self,
        pool: SpeculationPool,
        source: Callable[[tuple[str, ...]], Source],
        make_row: Callable[[dict[str, Any], tuple[Any, ...]], Row],
        key: str,
    ) -> tuple[Source, Future[list[Row]]]:
        """Start fetching the first page of ``key`` ahead of SQLite asking for it (read-ahead for a join)."""
        started = source((key,))

        def to_rows(source: Source, items: list[dict[str, Any]]) -> list[Row]:
            # The row function of the statement that guessed, even if this cursor is filtered anew meanwhile.
            return [make_row(item, source.key) for item in items]

        return started, pool.submit(functools.partial(fetch_rows, started, to_rows))

    def current(self) -> tuple[int, Row] | None:
        """(number, row) of the row SQLite is on, or None (for read-ahead: a join's inner table looks here)."""
        return (self._row_number, self._rows[self._pos]) if self._pos < len(self._rows) else None

    def upcoming(self, count: int) -> list[tuple[int, Row]]:
        """(number, row) of up to ``count`` rows after the current one that are already fetched."""
        start = self._pos + 1
        return [(self._row_number + n, row) for n, row in enumerate(self._rows[start : start + count], 1)]

    def _to_rows(self, source: Source, items: list[dict[str, Any]]) -> list[Row]:
        """Each item as the full row SQLite sees: the visible columns, then the hidden keys."""
        make_row, key = self._make_row, source.key
        return [make_row(item, key) for item in items]

    def _key_values(self, name: str, value: Any, whole_in: bool) -> list[str]:
        values = [value]
        if whole_in:
            # apsw before 3.54 passes None for an empty IN set (a NULL in the list arrives inside the set).
            values = [] if value is None else sorted(value, key=lambda v: (type(v).__name__, v))
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
        if error.path != source.pager.path:  # what the key's answer named is gone, not the key
            detail = error.message.partition("HTTP 404: ")[2].partition("; ")[0] or "no such object"
            warn(GoneWarning(f"{self.table.name}: no rows for {names}: GET {error.path} answered HTTP 404 ({detail})"))
            return
        self._warn_unknown(names, None, "the API answered HTTP 404; check the id")

    def _bound_value(self, step: Step, value: Any) -> int:
        """A time comparison's value as the whole unix seconds the API takes, rounded outwards (a superset)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidKeyError(
                f"{self.table.name}: {step.name} {step.how} {_short(value)}: {step.name} is unix seconds and the "
                f"API takes only numbers: compare with unixepoch('2026-01-01') or unixepoch('now', '-7 days')"
            )
        lower = self.vtable.bounds[step.name, step.how].lower
        return math.floor(value) if lower else math.ceil(value)

    def _warn_unknown(self, name: str, value: str | None, why: str) -> None:
        what = name if value is None else f"{name}={_short(value)}"
        warn(UnknownKeyWarning(f"{self.table.name}: no rows for unknown {what}: {why}"))

    def _missing_key_message(self, missing: tuple[str, ...]) -> str:
        keys = tuple(name for name in missing if not name.startswith(BOUND_MISSING))
        if not keys:
            column = missing[0].removeprefix(BOUND_MISSING)
            bound = next(b for c, b in self.table.required_bounds if c == column)
            return (
                f"{self.table.name} needs a lower bound on {column}: the API answers only from a {column} on, and "
                f"this query gives SQLite none it can pass ({column} >= X, > X or = X can; an upper bound alone, "
                f"!= or an OR cannot). Add WHERE {bound.example}, or a unix time of your own: "
                f"{column} >= unixepoch('2026-01-01')"
            )
        return self._missing_keys_message(keys)

    def _missing_keys_message(self, missing: tuple[str, ...]) -> str:
        name = " and ".join(missing)
        first = missing[0]
        example = self.table.key_doc.get(first, "an id")
        return (
            f"{self.table.name} needs {name}: the API lists rows only per {name}, and this query gives SQLite "
            f"no way to pass it (LIKE, IS, ranges, != and COLLATE NOCASE cannot; nor can an OR, unless each of "
            f"its branches has {first} = '...' and no COLLATE; nor a join that keeps every row of "
            f"{self.table.name}: it cannot be the kept side of a LEFT, RIGHT or FULL JOIN). Add WHERE {first} = "
            f"'...' ({example}), or {first} IN (...) (also next to an OR: AND {first} IN (every id it names)), "
            f"or join ON {first} = other.column, or use the table-valued form {self.table.name}('...')"
        )

    def _reset(self) -> None:
        if self._stream is not None:
            self._stream.close()
        self.ahead.forget()  # guesses made from the rows of the scan that ends here
        self._stream = None
        self._rows = []
        self._pos = 0
        self._row_number += 1

    def _advance_page(self) -> None:
        while True:
            batch = self._stream.next_batch() if self._stream is not None else None
            if batch and self._checks:
                batch = [row for row in batch if _passes(row, self._checks)]
            if batch is None or batch:
                break
        self._rows, self._pos = batch or [], 0

    def Eof(self) -> bool:  # noqa: N802
        """True when the scan has no current row."""
        return self._pos >= len(self._rows)

    def Next(self) -> None:  # noqa: N802
        """Move to the next row, fetching the next page only when this one is used up."""
        self._pos += 1
        self._row_number += 1
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
        rowid = stable_rowid((*row[self._ncols :], *(str(row[i]) for i in self._identity)))
        writer = self.vtable.writer
        if writer is not None and writer.recording:
            writer.saw(rowid, row)
        return rowid

    def Close(self) -> None:  # noqa: N802
        """Release the scan, and what was read ahead for it or from it (nothing waits for a request on the wire)."""
        self._follower.close()
        self._reset()
        self.registration.cursors.discard(self)


def _passes(row: Row, checks: list[tuple[int, str, Any]]) -> bool:
    """Whether SQLite keeps ``row`` under ``checks`` (see CHECKS): a row is dropped only when that is certain.

    ``=`` under BINARY: NULL never equals; two texts equal only byte for byte. Any other pair of types is left to
    SQLite (its affinity rules may convert one side). ``IN``: the same against a set of texts (None: of other values).
    """
    for index, op, value in checks:
        cell = row[index]
        if op == "IS NULL":
            if cell is not None:
                return False
        elif op == "IS NOT NULL":
            if cell is None:
                return False
        elif op == CHECK_IN:
            if cell is None or (value is not None and cell.__class__ is str and cell not in value):
                return False
        elif cell is None or (cell.__class__ is str and value.__class__ is str and cell != value):
            return False
    return True


def _sql_type(value: Any) -> str:
    return {int: "an integer", float: "a real", bytes: "a blob"}.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}...{text[-10:]} ({len(value)} characters)"


class _ProbeModule:
    """The throwaway table ``whole_in_sets_work`` asks: ``probe(v, k HIDDEN)``, taking any IN list whole."""

    def __init__(self, received: list[Any]) -> None:
        self.received = received

    def Connect(self, *args: Any) -> tuple[str, _ProbeModule]:  # noqa: N802
        return "CREATE TABLE probe(v, k HIDDEN)", self

    def BestIndexObject(self, info: apsw.IndexInfo) -> bool:  # noqa: N802
        info.estimatedCost = 1e9  # so that SQLite takes the plan with the IN list
        for i in range(info.nConstraint):
            if info.get_aConstraint_usable(i) and info.get_aConstraintUsage_in(i):
                info.set_aConstraintUsage_argvIndex(i, 1)
                info.set_aConstraintUsage_in(i, True)
                info.estimatedCost = 1
        return True

    def Open(self) -> _ProbeModule:  # noqa: N802
        return self

    def Filter(self, indexnum: int, indexname: str, constraintargs: Sequence[Any]) -> None:  # noqa: N802
        self.received.extend(constraintargs)

    def Eof(self) -> bool:  # noqa: N802
        return True

    def Close(self) -> None:  # noqa: N802
        pass

    def Disconnect(self) -> None:  # noqa: N802
        pass
