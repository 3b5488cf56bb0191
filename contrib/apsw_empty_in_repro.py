"""An empty ``IN (SELECT ...)`` handed to a virtual table with ``set_aConstraintUsage_in``: a report for apsw.

Run it with any apsw (standard library + apsw only, nothing else)::

    python contrib/apsw_empty_in_repro.py

A virtual table that asks for an IN constraint all at once (``IndexInfo.set_aConstraintUsage_in(i, True)``)
should receive the right-hand side as a ``set`` in ``Filter``, and an empty ``set()`` when the subquery
selects nothing (SQL says ``x IN (<empty>)`` is false, so the table simply has no rows to give).

What happens instead:

* apsw 3.54.0.0 and 3.54.1.0: the statement fails with ``apsw.SQLError('<NULL>')`` and ``Filter`` is never
  called. SQLite's ``sqlite3_vtab_in_first()`` returns ``SQLITE_DONE`` for an empty list. In the 3.54.1.0
  wheel (read with gdb and objdump: the 3.54 source was not at hand) ``apswvtabFilter`` makes a set only for
  ``SQLITE_OK``, the plain value only for ``SQLITE_ERROR`` (not an IN list), and treats every other result
  as a failure; for ``SQLITE_DONE`` it sets no Python exception, so the statement aborts with no message.
* apsw 3.45.0.0 to 3.53.4.0: ``Filter`` is called, but receives ``None`` rather than a set (the conversion
  gives up on the IN list and falls back to an ordinary NULL value), so it cannot tell an empty IN list
  from ``x = NULL``.

Suggested fix: in the conversion of an IN constraint's value, treat ``SQLITE_DONE`` from
``sqlite3_vtab_in_first()`` as the empty list and return ``set()``.

The script prints what the installed apsw does and exits 0 when Filter receives ``set()``, 1 otherwise.
"""

from __future__ import annotations

import sys
from typing import Any

import apsw


class Module:
    """A table ``t(value, k HIDDEN)`` that takes equality on ``k`` all at once when SQLite offers an IN list."""

    def __init__(self, calls: list[Any]) -> None:
        self.calls = calls

    def Connect(self, connection: apsw.Connection, *args: str) -> tuple[str, Table]:  # noqa: N802 - apsw's names
        return "CREATE TABLE t(value, k HIDDEN)", Table(self.calls)


class Table:
    """Offers the IN list on ``k`` whole; any other plan is costed out."""

    def __init__(self, calls: list[Any]) -> None:
        self.calls = calls

    def BestIndexObject(self, info: apsw.IndexInfo) -> bool:  # noqa: N802
        for i in range(info.nConstraint):
            if (
                info.get_aConstraint_usable(i)
                and info.get_aConstraint_iColumn(i) == 1
                and info.get_aConstraint_op(i) == apsw.SQLITE_INDEX_CONSTRAINT_EQ
            ):
                info.set_aConstraintUsage_argvIndex(i, 1)
                info.set_aConstraintUsage_omit(i, True)
                if info.get_aConstraintUsage_in(i):
                    info.set_aConstraintUsage_in(i, True)
                info.estimatedCost = 1
                return True
        info.estimatedCost = 1e9
        return True

    def Open(self) -> Cursor:  # noqa: N802
        return Cursor(self.calls)

    def Disconnect(self) -> None:  # noqa: N802
        pass


class Cursor:
    """Records what Filter received, and yields one row per key."""

    def __init__(self, calls: list[Any]) -> None:
        self.calls = calls
        self.rows: list[tuple[Any, ...]] = []

    def Filter(self, indexnum: int, indexname: str, constraintargs: tuple[Any, ...]) -> None:  # noqa: N802
        self.calls.append(constraintargs[0])
        keys = constraintargs[0] if isinstance(constraintargs[0], set) else {constraintargs[0]}
        self.rows = [(f"row of {k}", k) for k in sorted(keys) if k is not None]

    def Eof(self) -> bool:  # noqa: N802
        return not self.rows

    def Column(self, number: int) -> Any:  # noqa: N802
        return self.rows[0][number]

    def Rowid(self) -> int:  # noqa: N802
        return 1

    def Next(self) -> None:  # noqa: N802
        self.rows.pop(0)

    def Close(self) -> None:  # noqa: N802
        pass


def main() -> int:
    """Run the non-empty and the empty IN list; report what Filter received."""
    print(f"apsw {apsw.apswversion()}, SQLite {apsw.sqlite_lib_version()}, Python {sys.version.split()[0]}")
    calls: list[Any] = []
    db = apsw.Connection(":memory:")
    db.create_module("t", Module(calls), use_bestindex_object=True, eponymous_only=True, read_only=True)
    db.execute("CREATE TABLE wanted(k); INSERT INTO wanted VALUES ('a'), ('b')")
    sql = "SELECT value FROM t WHERE k IN (SELECT k FROM wanted WHERE k <> ?)"

    rows = db.execute(sql, ("none",)).fetchall()
    print(f"non-empty IN: rows {rows}, Filter received {calls[-1]!r}")

    calls.clear()
    try:
        rows = db.execute(sql.replace("<>", "="), ("none",)).fetchall()
    except apsw.Error as error:
        print(f"empty IN:     statement failed with {error!r}; Filter called {len(calls)} time(s)")
        return 1
    received = calls[-1] if calls else "(Filter not called)"
    print(f"empty IN:     rows {rows}, Filter received {received!r}")
    if received == set():
        print("OK: an empty IN list arrives as an empty set")
        return 0
    print("NOT OK: an empty IN list should arrive as set()")
    return 1


if __name__ == "__main__":
    sys.exit(main())
