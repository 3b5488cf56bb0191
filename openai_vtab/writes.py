"""What INSERT, UPDATE and DELETE on the OpenAI tables send, and the guard that keeps them opt-in.

A table says which writes it takes in its declaration (``tables/declare.py``: ``Writes``); this module runs
them, one API call per row, and refuses everything else:

* ``WriteGuard`` is the connection's authorizer. It runs when a statement is prepared, so a refused write sends
  nothing, not even the GETs that would find its rows: every write while writes are off (the default), a write
  a table does not declare (an UPDATE of any column but ``status``), and any write from inside a trigger or a
  view, which would otherwise fire API calls behind the user's back. Reads through views stay allowed. It
  passes everything else on to the authorizer the connection had before.
* ``TableWriter`` turns SQLite's per-row calls into API calls. SQLite finds every row an UPDATE or DELETE
  matches before it changes the first, and asks each one's rowid: the writer records those rows, so when the
  call for one row fails it can say which ids were changed and which were not. SQLite cannot undo an API call,
  so nothing claims a rollback: a ``PartialWriteError`` names both lists. A row whose values would not change
  sends nothing. A statement stopped by Ctrl-C or ``Connection.interrupt()`` keeps its exception and says on the
  change hook what it did, and which call may have worked without an answer.
* A create (POST) is never sent twice unless the connection was never made (``Client.send``), and an error that
  leaves its outcome unknown says how to check.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import apsw

from .client import encode_path
from .errors import APIError, APIStatusError, NotFoundError, OpenAIVTabError, PartialWriteError, WriteRefusedError
from .paging import items_at

if TYPE_CHECKING:
    from .registration import Registration
    from .tables import Table, Writes

__all__ = ["TableWriter", "WriteGuard", "stable_rowid"]

ALLOW_WRITES = (
    "register(db, allow_writes=True) in Python (in apsw's own shell, on the register() line of "
    "examples/load_openai_vtab.py), --allow-writes in the openai-vtab shell"
)
# A failure message lists at most this many ids of each kind; the exception carries them all.
MAX_IDS_SHOWN = 50
# A status an object passes through on its way to the one asked for: a batch is ``cancelling`` before ``cancelled``.
_ON_ITS_WAY = {"cancelled": ("cancelling",)}
_WRITE_OPS = {apsw.SQLITE_INSERT: "INSERT", apsw.SQLITE_UPDATE: "UPDATE", apsw.SQLITE_DELETE: "DELETE"}

Authorizer = Callable[[int, str | None, str | None, str | None, str | None], int]


def stable_rowid(parts: Iterable[str]) -> int:
    """A rowid from the keys and identity of a row: 63 bits of a hash, the same in every scan and statement."""
    ident = "\x00".join(parts)
    return int.from_bytes(hashlib.blake2b(ident.encode(), digest_size=8).digest(), "big") >> 1


class WriteGuard:
    """The authorizer that refuses, at prepare time, every write to ``tables`` that may not run.

    ``tables`` maps each name a table that takes writes is registered under (its name and its ``openai_`` alias)
    to the table;
    ``previous`` is the connection's authorizer before this one, asked about everything this one lets through.
    """

    def __init__(self, tables: Mapping[str, Table], registration: Registration, previous: Authorizer | None) -> None:
        self.tables = tables
        self.registration = registration
        self.previous = previous

    def __call__(self, op: int, p1: str | None, p2: str | None, database: str | None, trigger: str | None) -> int:
        """SQLite's authorizer callback: raises WriteRefusedError for a refused write, else asks ``previous``."""
        table = self.tables.get(p1 or "") if op in _WRITE_OPS else None
        # A table that takes no writes is not in ``tables``: registered read-only, SQLite itself refuses it.
        if table is not None:
            self._check(_WRITE_OPS[op], table, p1 or table.name, p2, trigger)
        return self.previous(op, p1, p2, database, trigger) if self.previous is not None else apsw.SQLITE_OK

    def _check(self, statement: str, table: Table, name: str, column: str | None, trigger: str | None) -> None:
        writes = table.writes
        if trigger is not None:
            raise WriteRefusedError(
                f"{name}: {statement} from inside the trigger or view {trigger!r} refused: a write to the OpenAI "
                "API must be a statement you run yourself, so nothing was sent; run the "
                f"{statement} directly (drop the trigger or view if it is not needed)"
            )
        assert writes is not None
        if statement not in writes.statements:
            raise WriteRefusedError(
                f"{name} takes no {statement}, so nothing was sent: it takes {writes.describe()} (README: "
                "Changing things)"
            )
        if not self.registration.allow_writes:
            raise WriteRefusedError(
                f"{name}: {statement} refused: writes to the OpenAI API are off, so nothing was sent (they spend "
                f"money and delete data, so they are opt-in): allow them with {ALLOW_WRITES}"
            )
        if self.registration.read_only():
            # SQLite would fail it at its first step with only "attempt to write a readonly database".
            raise WriteRefusedError(
                f"{name}: {statement} refused, so nothing was sent: the database was opened read-only (-readonly "
                "in the shell, SQLITE_OPEN_READONLY in Python), and SQLite refuses every write on such a "
                "connection, the OpenAI tables' too; open it without -readonly, or open :memory: and ATTACH "
                "'file:your.db?mode=ro' AS mine to keep your own file read-only"
            )
        if statement == "UPDATE" and column != "status":
            values = ", ".join(repr(value) for value in writes.status)
            raise WriteRefusedError(
                f"{name}: UPDATE of {column} refused, so nothing was sent: only status can be set, to {values} "
                f"(UPDATE {table.name} SET status = {next(iter(writes.status))!r} WHERE ...)"
            )


class TableWriter:
    """Sends the writes of one virtual table: SQLite calls ``insert``, ``change`` and ``delete`` once per row.

    ``names`` are the table's column names in SQLite's order (visible, then hidden). Between ``begin()`` and
    ``end()`` (SQLite's xBegin and xCommit or xRollback) the cursors report every row whose rowid SQLite asks
    (``saw``): the rows a statement matched.
    """

    def __init__(self, table: Table, registration: Registration, names: list[str]) -> None:
        assert table.writes is not None
        self.table = table
        self.writes: Writes = table.writes
        self.registration = registration
        self.names = names
        self.recording = False
        self._matched: dict[int, tuple[Any, ...]] = {}
        self._changed: dict[int, str] = {}  # rowid -> id, in the order the calls succeeded
        self._inserted = 0
        self._statement = 0
        self._kind = ""  # INSERT, UPDATE or DELETE: the write the current statement made so far
        self._wrote = False  # a write call was made since the statement's scan
        self._over = False  # the current statement certainly ended (one of its rows failed)
        self._certain = False  # every row in ``_matched`` certainly belongs to the current statement

    def begin(self) -> None:
        """A write transaction starts: record the rows it matches."""
        self.recording = True
        # xBegin runs inside the transaction's first write statement, before its scan: what it records is its own.
        self._start_statement(certain=True)
        # The scan decides what is sent (a row whose status would not change is skipped): it must read the API as
        # it is now, not an answer the cache kept from before.
        self.registration.clear_cache()

    def _start_statement(self, *, certain: bool = False) -> None:
        self._statement = self.registration.total_changes()
        self._kind = ""
        self._wrote = self._over = False
        self._certain = certain
        self._matched.clear()
        self._changed.clear()
        self._inserted = 0

    def _enter(self, kind: str) -> None:
        """A write call of ``kind``: start a new statement when the last one is known to have ended.

        SQLite begins a virtual table's transaction once per BEGIN ... COMMIT and calls no hook between
        statements, so the boundaries are inferred: total_changes() moves when a statement ends with changes, a
        failed row ends its statement, and one statement makes one kind of write.
        """
        if self._over or self._kind not in ("", kind) or self.registration.total_changes() != self._statement:
            self._start_statement()
        self._kind = kind
        self._wrote = True

    def end(self, *, rolled_back: bool = False) -> None:
        """The transaction ended (committed or rolled back: the API calls made stay made either way).

        A statement that changed objects and then stopped without a failure of its own (``Connection.interrupt()``,
        Ctrl-C in the shell between two calls, an error in another part of the statement) rolls back before it
        counts its changes: say what it did, since the exception cannot.
        """
        if rolled_back and self._changed and not self._over and self.registration.total_changes() == self._statement:
            kind = self._kind or "write"
            rest = ["any rows after them"] if kind == "INSERT" else self._rest()
            self._say(self._summary(kind, f"{kind} stopped before it finished", rest))
        self.recording = False
        self._matched.clear()
        self._changed.clear()

    def saw(self, rowid: int, row: tuple[Any, ...]) -> None:
        """A cursor's row whose rowid SQLite asked while a write transaction is open.

        SQLite reads every row an UPDATE or DELETE matches before it changes the first, so a row read after a
        write call belongs to a later statement. Rows a SELECT inside the transaction read are recorded too, which
        is why only the transaction's first statement trusts its list (``_certain``).
        """
        if self._wrote or self._over or self.registration.total_changes() != self._statement:
            self._start_statement()
        # A scan reads only the columns its statement uses (the others are None): keep the fullest copy, which an
        # UPDATE's own scan gives (it reads every column), so change() can tell which columns it changes.
        known = self._matched.get(rowid)
        if known is None or known.count(None) >= row.count(None):
            self._matched[rowid] = row

    def insert(self, fields: tuple[Any, ...], rowid: int | None = None) -> int:
        """INSERT of one row: POST the create; the new object's rowid. A given ``rowid`` is refused."""
        self._enter("INSERT")
        row = dict(zip(self.names, fields, strict=True))
        self._inserted += 1
        if rowid is not None:
            refused = WriteRefusedError(
                f"{self.table.name}: INSERT of row {self._inserted} refused, so nothing was sent for it: a rowid "
                f"({rowid}) cannot be given, since the API picks the new object's id and the rowid follows from it; "
                "leave rowid out (INSERT OR REPLACE replaces nothing here either)"
            )
            self._fail("INSERT", f"row {self._inserted}", [f"row {self._inserted} and any after it"], refused)
        try:
            body = self._create_body(row)
            answer = self.registration.client.send(
                "POST",
                encode_path(self.writes.create or "", _texts(row)),
                body,
                table=self.table.name,
                admin=self.table.admin,
                resend=False,
                unknown_outcome=self._unknown_outcome(row),
            )
        except KeyboardInterrupt as interrupt:
            # The id of what the create may have made is unknown: no earlier id may pass for the last one.
            self.registration.last_insert_id = None
            self._interrupted(
                interrupt,
                "INSERT",
                f"row {self._inserted}",
                f"may have created a {self.writes.noun}",
                ["any rows after it"],
                self._create_check(row),
            )
        except OpenAIVTabError as error:
            at = f"row {self._inserted}"
            if isinstance(error, APIError) and error.outcome_unknown:
                self._fail("INSERT", at, ["any rows after it"], error, unknown=[at])
            self._fail("INSERT", at, [f"{at} and any after it"], error)
        created = items_at(answer, self.writes.created) if self.writes.created else [answer]
        ids = [item.get("id") for item in created or [] if isinstance(item, dict)]
        new_id = str(ids[-1]) if ids and ids[-1] is not None else ""
        self.registration.last_insert_id = new_id
        rowid = stable_rowid((*_texts(row, self.table.keys).values(), new_id))
        self._changed[rowid] = new_id
        self._report(f"created {new_id}", created[-1] if created else None)
        return rowid

    def change(self, rowid: int, fields: tuple[Any, ...], newrowid: int | None = None) -> None:
        """UPDATE of one row: POST the call of its new status. Any other column changed is refused here too, not
        only by the guard: an authorizer can be replaced, and a pause must never be sent for ``SET model = ...``."""
        self._enter("UPDATE")
        row = dict(zip(self.names, fields, strict=True))
        ident = str(row.get("id"))
        before = self._matched.get(rowid)
        if before is None:  # SQLite reads every row it updates first; this guards against a change in that
            refused = WriteRefusedError(
                f"{self.table.name}: UPDATE of a row this statement did not read ({ident}), so nothing was sent "
                "for it: report this with the statement"
            )
            self._fail("UPDATE", ident, self._unchanged(ident), refused)
        differ = [name for name, old, new in zip(self.names, before, fields, strict=True) if old != new]
        if not differ and newrowid in (None, rowid):
            # Nothing to change (SET status = status, a CASE's ELSE, or a row an UPDATE ... FROM matched again
            # after this statement changed it): sqlite3 sends nothing for it either, so no call and no change line.
            return
        others = [name for name in differ if name != "status"] + (["rowid"] if newrowid not in (None, rowid) else [])
        status = row.get("status")
        template = self.writes.status.get(status) if isinstance(status, str) and not others else None
        if template is None:
            values = ", ".join(repr(value) for value in self.writes.status)
            what = f"{', '.join(others)} cannot be changed" if others else f"status cannot be set to {_sql(status)}"
            refused = WriteRefusedError(
                f"{self.table.name}: UPDATE of {ident} refused, so nothing was sent for it: {what}; only status can "
                f"be set, to {values} (which send {', '.join(self.writes.status.values())})"
            )
            self._fail("UPDATE", ident, self._unchanged(ident), refused)
        self._call(rowid, row, "UPDATE", "POST", template, f"set to {status}", status)
        # SQLite calls this once per match of an UPDATE ... FROM: the row now holds what this statement set.
        self._matched[rowid] = fields

    def delete(self, rowid: int) -> None:
        """DELETE of one row, known by the rowid its scan gave: send the DELETE."""
        self._enter("DELETE")
        fields = self._matched.get(rowid)
        if fields is None:  # SQLite always asks a row's rowid before deleting it; this guards against a change
            raise WriteRefusedError(
                f"{self.table.name}: DELETE of a row this statement did not read, so nothing was sent for it: "
                "report this with the statement"
            )
        row = dict(zip(self.names, fields, strict=True))
        self._call(rowid, row, "DELETE", "DELETE", self.writes.delete or "", "deleted")

    def _call(
        self, rowid: int, row: dict[str, Any], statement: str, method: str, template: str, done: str, target: str = ""
    ) -> None:
        ident = str(row.get("id"))
        path = encode_path(template, _texts(row))
        try:
            answer = self.registration.client.send(method, path, table=self.table.name, admin=self.table.admin)
        except KeyboardInterrupt as interrupt:
            rest = [other for other in self._rest() if other != ident]
            self._interrupted(interrupt, statement, ident, f"may have been {done}", rest, self._check_query(row))
        except OpenAIVTabError as error:
            answer = self._done_by_earlier_attempt(error, row, path, target)
            if answer is None:
                # When an earlier attempt reached the server, the row may have changed: it is neither list's.
                if isinstance(error, APIError) and error.earlier_attempt_reached:
                    self._fail(statement, ident, self._unchanged(ident)[1:], error, unknown=[ident])
                self._fail(statement, ident, self._unchanged(ident), error)
            done += " by an earlier attempt of this call, whose answer was lost"
        self._changed[rowid] = ident
        self._report(f"{ident} {done}", answer)

    def _done_by_earlier_attempt(
        self, error: OpenAIVTabError, row: dict[str, Any], path: str, target: str
    ) -> dict[str, Any] | None:
        """When an earlier attempt of this call may have reached the server and the retry was refused: the object
        if that attempt did the change after all (``{}`` for a DELETE), else None, with a note added to ``error``.

        A retried DELETE that the first attempt applied answers 404, and a retried cancel answers 400 ("already
        cancelled"); counting those as failures would stop the statement on a change that happened.
        """
        if not isinstance(error, APIError) or not error.earlier_attempt_reached:
            return None
        if isinstance(error, APIStatusError) and 400 <= error.status_code < 500 and error.status_code != 429:
            if not target:
                if isinstance(error, NotFoundError):
                    return {}
            else:
                # The status call's path is the object's path plus the action: read the object back once.
                try:
                    current = self.registration.client.get(
                        path.rpartition("/")[0], {}, table=self.table.name, admin=self.table.admin
                    )
                except OpenAIVTabError:
                    current = None
                if isinstance(current, dict) and current.get("status") in {target, *_ON_ITS_WAY.get(target, ())}:
                    return current
        error.message = (
            f"{error.message}; an earlier attempt of this call reached the server without a clear answer and may "
            f"have worked: check with {self._check_query(row)}"
        )
        error.args = (error.message,)
        return None

    def _create_body(self, row: dict[str, Any]) -> dict[str, Any]:
        """The create's JSON body from the columns the INSERT gave, checked before anything is sent."""
        writes = self.writes
        # The keys (checkpoint_permissions' fine_tuned_model_checkpoint) go into the path, but are columns given too.
        takes = ", ".join(dict.fromkeys([*self.table.keys, *writes.create_columns]))
        given = {name for name, value in row.items() if value is not None}
        extra = sorted(given - set(writes.create_columns) - set(self.table.keys))
        missing = [name for name in writes.required if name not in given]
        if extra or missing:
            what = f"{', '.join(extra)} cannot be given" if extra else f"{', '.join(missing)} must be given"
            raise WriteRefusedError(
                f"{self.table.name}: INSERT refused, so nothing was sent: {what}; an INSERT takes {takes}"
                + (f" (required: {', '.join(writes.required)})" if writes.required else "")
            )
        types = {column.name: column.type for column in self.table.columns}
        body: dict[str, Any] = {}
        for name in writes.create_columns:
            value = row.get(name)
            if value is None:
                continue
            value = self._typed(name, types.get(name, "TEXT"), value)
            if name in writes.as_list:
                body[writes.as_list[name]] = [value]
            else:
                body[name] = value
        return body

    def _typed(self, name: str, kind: str, value: Any) -> Any:
        """``value`` as the spec types column ``name``: integer text becomes an integer and a number becomes text,
        JSON text is parsed; anything else that does not fit is refused, so that nothing is sent."""
        if kind == "INTEGER":
            if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
                return int(value)
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, int):
                return value
            self._refuse_type(name, "an integer", value, "7")
        if kind == "JSON":
            shape, example = (
                (list, "json_array(...)") if name in self.writes.arrays else (dict, "json_object('key', 'value')")
            )
            parsed = value
            if isinstance(value, str):
                try:
                    parsed = json.loads(value)
                except ValueError as error:
                    raise WriteRefusedError(
                        f"{self.table.name}: INSERT refused, so nothing was sent: {name} is not JSON ({error}): "
                        f"give it as JSON text, e.g. {example}"
                    ) from None
            if not isinstance(parsed, shape):
                self._refuse_type(name, "a JSON array" if shape is list else "a JSON object", value, example)
            return parsed
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            self._refuse_type(name, "text", value, "'...'")
        return value

    def _refuse_type(self, name: str, wanted: str, value: Any, example: str) -> NoReturn:
        shown = f"a blob of {len(value)} bytes" if isinstance(value, bytes) else _sql(value)
        raise WriteRefusedError(
            f"{self.table.name}: INSERT refused, so nothing was sent: {name} must be {wanted}, not {shown} "
            f"(e.g. {name} = {example})"
        )

    def _check_query(self, row: dict[str, Any]) -> str:
        """The SELECT that shows an existing object's row as the API has it now."""
        keys = ", ".join(_sql_text(value) for value in _texts(row, self.table.keys).values())
        return f"SELECT * FROM {self.table.name}{f'({keys})' if keys else ''} WHERE id = {_sql_text(row.get('id'))}"

    def _create_check(self, row: dict[str, Any]) -> str:
        """The SELECT that finds an object a create may have made."""
        return self.writes.check.format(**{k: str(v).replace("'", "''") for k, v in _texts(row).items()})

    def _unknown_outcome(self, row: dict[str, Any]) -> str:
        return (
            f"the {self.writes.noun} may have been created anyway, and it was not sent again (that could create "
            f"it twice): check with {self._create_check(row)} before you insert it again"
        )

    def _rest(self) -> list[str]:
        """The ids the statement matched and did not change; none when they are not certain (inside BEGIN)."""
        if not self._certain:
            return []
        id_index = self.names.index("id")
        return [str(row[id_index]) for rowid, row in self._matched.items() if rowid not in self._changed]

    def _unchanged(self, failed: str) -> list[str]:
        """The ids matched but not changed, the one that failed first; only it when the others are not certain."""
        return [failed, *(ident for ident in self._rest() if ident != failed)]

    def _interrupted(
        self, interrupt: KeyboardInterrupt, statement: str, at: str, maybe: str, unchanged: list[str], check: str
    ) -> NoReturn:
        """Ctrl-C while the call for ``at`` was on the wire: say that it may have worked and what the statement
        did (on the change hook, and as a note on the interrupt), then let the interrupt go on as it is."""
        self._over = True
        self._say(
            f"{self.table.name}: {at} {maybe}: interrupted while waiting for the API's answer, and the call may "
            f"have reached the server: check with {check}"
        )
        summary = self._summary(statement, f"{statement} interrupted at {at}", unchanged, [at])
        self._say(summary)
        if sys.version_info >= (3, 11):
            interrupt.add_note(summary)
        raise interrupt

    def _summary(self, statement: str, what: str, unchanged: list[str], unknown: list[str] | None = None) -> str:
        """One line of what a statement that stopped half-way did: SQLite cannot undo the API calls it made.

        ``unknown`` are the rows whose call may have worked without an answer that says so."""
        verb = "created" if statement == "INSERT" else "changed"
        changed = list(self._changed.values())
        rest = _ids(unchanged) if unchanged or self._certain or statement == "INSERT" else ""
        if not self._certain and statement != "INSERT":
            # Inside BEGIN ... COMMIT the statement's other rows cannot be told from rows read before it: say so.
            rest = (
                f"{rest} and any rows the statement matched after it"
                if rest
                else "any rows the statement matched after it"
            )
        return (
            f"{self.table.name}: {what} after {len(changed)} {self.writes.noun}(s) were {verb}, and nothing was "
            f"rolled back (SQLite cannot undo API calls): {verb}: {_ids(changed)}; "
            + (f"may have been {verb}: {_ids(unknown)}; " if unknown else "")
            + f"not {verb}: {rest}"
        )

    def _fail(
        self,
        statement: str,
        at: str,
        unchanged: list[str],
        error: OpenAIVTabError,
        unknown: list[str] | None = None,
    ) -> NoReturn:
        """Raise the error of a failed row: itself when nothing was changed yet, else one naming the lists.

        The failure ends the statement (SQLite aborts it), so the next write call starts a new one.
        """
        self._over = True
        changed = list(self._changed.values())
        if not changed:
            raise error
        # The message names an INSERT's rows by number ("row 2 and any after it"); the attributes hold ids only,
        # and rows that were not created have none: failed_row says where the INSERT stopped instead.
        insert = statement == "INSERT"
        raise PartialWriteError(
            self._summary(statement, f"{statement} failed at {at}", unchanged, unknown) + f". The failure: {error}",
            changed=changed,
            unchanged=[] if insert else unchanged,
            unknown=[] if insert else unknown or [],
            error=error,
            failed_row=self._inserted if insert else None,
            outcome_unknown=bool(unknown),
        ) from error

    def _report(self, what: str, answer: Any) -> None:
        status = answer.get("status") if isinstance(answer, dict) else None
        self._say(f"{self.table.name}: {what}" + (f" (status now {status})" if isinstance(status, str) else ""))

    def _say(self, line: str) -> None:
        for hook in self.registration.on_change:
            hook(line)


def _texts(row: Mapping[str, Any], names: Iterable[str] | None = None) -> dict[str, str]:
    """The row's non-NULL values as text, for URL paths (``encode_path`` percent-encodes them)."""
    wanted = row.keys() if names is None else names
    return {name: str(row[name]) for name in wanted if row.get(name) is not None}


def _sql_text(value: Any) -> str:
    """``value`` as an SQL string literal, for the queries a message suggests."""
    return "'" + str(value).replace("'", "''") + "'"


def _sql(value: Any) -> str:
    """``value`` as SQL shows it in a message: NULL, a number, or a string literal."""
    if value is None:
        return "NULL"
    return str(value) if isinstance(value, int | float) else _sql_text(value)


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_IDS_SHOWN]) or "none"
    return shown + (f" and {len(ids) - MAX_IDS_SHOWN} more" if len(ids) > MAX_IDS_SHOWN else "")
