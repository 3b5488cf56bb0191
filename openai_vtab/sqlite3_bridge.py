"""The bridge to the stock ``sqlite3`` CLI, which cannot load a Python virtual table but can ``.read`` the
output of a command.

``openai-vtab --sqlite3-loader`` prints the loader: per ``NAME=QUERY``, a typed temp table and a ``.read`` of
``openai-vtab --sqlite3-rows NAME``, which runs QUERY on the same database file and prints its rows as INSERTs
inside a savepoint. Whatever fails on this side (a bad query, a setting, a fetch) also ends in a statement that
fails in sqlite3, so that sqlite3 reports an error and ``.bail on`` stops there; nothing is ever loaded in part.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

import apsw
import apsw.ext

from .errors import WriteRefusedError, one_line
from .tables import TABLES

__all__ = ["IDENTIFIER", "LoaderError", "failure", "identifier", "loader", "rows_begin", "rows_end"]

# The savepoint that makes rows loaded into the stock sqlite3 CLI all-or-nothing.
SAVEPOINT = "openai_vtab_rows"
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class LoaderError(Exception):
    """A ``NAME=QUERY`` the loader cannot turn into a table; the message says which and what to write."""


def loader(db: apsw.Connection, database: str, program: Sequence[str], specs: Sequence[str]) -> str:
    """SQL for sqlite3: per ``NAME=QUERY`` (or a table NAME), a typed temp table and a ``.read`` that fills it
    from ``program --sqlite3-rows NAME database QUERY``.

    ``db`` is the connection the queries are checked on (it has the OpenAI tables and the user's). Without
    specs, every table that needs no key, no time range and no admin key. Column types are those SQLite declares for the
    query's columns (none where it declares none, so values computed in SQL keep their own types).
    """
    # Admin tables need OPENAI_ADMIN_KEY, which most users of the loader do not have: they are named on purpose.
    whole = [(t.name, "") for t in TABLES if not t.keys and not t.required_bounds and not t.admin]
    wanted = [spec.partition("=")[::2] for spec in specs] or whole
    out = [
        "-- Made by openai-vtab --sqlite3-loader. .read it in the stock sqlite3 CLI: each .read '|...' runs",
        "-- openai-vtab, which fetches the rows afresh (read it again to refresh) and prints them as INSERTs",
        "-- inside a savepoint: a table gets all its rows or none, and a failure is an error here too.",
    ]
    for name, query in wanted:
        if not IDENTIFIER.fullmatch(name):
            raise LoaderError(f"--sqlite3-loader: {name!r} is not a plain table name: use NAME=SELECT ...")
        query = query or _whole_table(name)
        try:
            info = apsw.ext.query_info(db, query)
        except apsw.Error as error:
            raise LoaderError(f"--sqlite3-loader: the query for {name} fails: {one_line(error)}") from None
        except WriteRefusedError:
            # A write to an OpenAI table, refused as it was prepared: its advice (--allow-writes) does not apply here.
            raise LoaderError(_not_a_read(name, query)) from None
        if not query.strip() or (info.query_remaining or "").strip():
            raise LoaderError(f"--sqlite3-loader: {name}= needs exactly one SELECT statement, not {query!r}")
        if not info.is_readonly:
            raise LoaderError(_not_a_read(name, query))
        columns = _unique([(n, t or "") for n, t in info.description])
        definition = ", ".join(f"{identifier(column)} {kind}".rstrip() for column, kind in columns)
        pipe = _dot_argument("|" + shlex.join([*program, "--sqlite3-rows", name, database, query]))
        out += [
            f"DROP TABLE IF EXISTS temp.{identifier(name)};",
            f"CREATE TEMP TABLE {identifier(name)}({definition});",
            f".read {pipe}",
        ]
    return "\n".join(out) + "\n"


def _not_a_read(name: str, query: str) -> str:
    return (
        f"--sqlite3-loader: {name}= must be a query that only reads (SELECT ...), not {query!r}: the loader "
        "loads query results into sqlite3 (create and change your own tables in sqlite3 itself). Change the "
        "OpenAI tables in the openai-vtab shell with --allow-writes, or from Python with "
        "register(db, allow_writes=True)"
    )


def _whole_table(name: str) -> str:
    """The query that loads table ``name`` whole; an error if it needs a key or is not an OpenAI table."""
    table = next((t for t in TABLES if t.name == name), None)
    if table is None:
        raise LoaderError(
            f"--sqlite3-loader: no OpenAI table is called {name!r} (they are {', '.join(t.name for t in TABLES)}): "
            f"give a query instead, {name}=SELECT ..."
        )
    if table.keys:
        key = table.keys[0]
        raise LoaderError(
            f"--sqlite3-loader: {name} needs {', '.join(table.keys)}: give a query, for example "
            f'{name}="SELECT c.*, c.{key} FROM ... JOIN {name} c ON c.{key} = ..."'
        )
    if table.required_bounds:
        column, bound = table.required_bounds[0]
        raise LoaderError(
            f"--sqlite3-loader: {name} needs a lower bound on {column}: give a query, for example "
            f'{name}="SELECT * FROM {name} WHERE {bound.example}"'
        )
    return f"SELECT * FROM {identifier(name)}"


def rows_begin() -> str:
    """What the rows of ``--sqlite3-rows`` follow: the savepoint that makes them all-or-nothing."""
    return f"SAVEPOINT {SAVEPOINT};\n"


def rows_end(table: str, ok: bool) -> str:
    """What ends the rows: the savepoint released, or rolled back followed by a statement that fails."""
    if ok:
        return f"RELEASE {SAVEPOINT};\n"
    return f"ROLLBACK TO {SAVEPOINT};\nRELEASE {SAVEPOINT};\n" + failure(f"openai-vtab could not load {table}")


def failure(what: str) -> str:
    """A statement that fails in sqlite3, saying ``what`` failed: ``no such table: <what> (the error is
    above); nothing was loaded``.

    sqlite3 then counts an error: with ``.bail on`` it stops there, and its exit status says so.
    """
    return f"SELECT * FROM {identifier(what + ' (the error is above); nothing was loaded')};\n"


def identifier(name: str) -> str:
    """``name`` as an SQL identifier, always double-quoted."""
    return '"' + name.replace('"', '""') + '"'


def _unique(columns: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Column names made unique as sqlite3's CREATE TABLE AS does: a repeated ``id`` becomes ``id:1``."""
    seen: set[str] = set()
    result = []
    for name, kind in columns:
        unique, n = name, 0
        while unique.lower() in seen:
            n += 1
            unique = f"{name}:{n}"
        seen.add(unique.lower())
        result.append((unique, kind))
    return result


def _dot_argument(text: str) -> str:
    """``text`` as one argument of a sqlite3 dot-command: double-quoted, with sqlite3's backslash escapes."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
