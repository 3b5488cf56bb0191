"""The ``openai-vtab`` command: apsw's SQLite shell with the OpenAI tables on every connection it uses.

    openai-vtab [OPTIONS] [DATABASE] [SQL ...]

Everything apsw's shell offers keeps working (output modes, dot-commands, ``-init``, ...), the same on every
apsw from 3.45. Added here, mostly for habits from the sqlite3 CLI:

* ``-cmd COMMAND``, ``-readonly``, ``-markdown``, ``-quote``, ``-tabs``, ``.once``, ``.indexes``, ``.quit``,
  and exit status 1 when a statement failed outside an interactive session;
* errors and warnings as one plain line each on stderr, and the shell goes on (``-bail`` stops it);
* ``.tables`` and ``.schema PATTERN`` that show the OpenAI tables; ``-version`` and ``.version`` with ours;
* box, table and qbox modes that never break a value inside a word (``shell_format``), and blobs written as
  their bytes in the text modes, as sqlite3 writes them;
* ``.openai``: the effective API settings, the key masked, and where each setting came from;
* on a terminal, a self-erasing progress line while a statement has waited on the API for over a second;
* once per session, a ``hint:`` on stderr when a statement fetched many keys one at a time (a join from a table
  of the user's own), where ``IN (SELECT ...)`` would have fetched them concurrently;
* ``--cache-ttl SECONDS``: how long API answers are reused (``register(cache_ttl=...)``; 0 turns the cache off);
* ``--demo``: the fake API of ``openai_vtab.testing`` on 127.0.0.1, serving a sample organization, and
  ``--demo-server``: the same for other programs (``demo_server``);
* ``--sqlite3-loader``: SQL with which the stock ``sqlite3`` CLI imports query results (``sqlite3_bridge``).

The API key is read from OPENAI_API_KEY only: on the command line it would show in process lists and shell
history.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

import apsw
import apsw.shell

from . import ALIAS_PREFIX, TABLES, __version__, register
from .archiving import EXIT_INTERRUPTED, run_archive
from .cache import DEFAULT_CACHE_TTL
from .config import Config
from .demo import populate
from .demo_server import serve
from .errors import OpenAIVTabWarning, one_line
from .log import RequestLog
from .registration import Registration
from .shell_format import box, csv_field, markdown, name_columns, sanitize
from .sqlite3_bridge import IDENTIFIER, failure, identifier, loader, rows_begin, rows_end
from .status_line import StatusLine
from .testing import FakeOpenAI

__all__ = ["JoinHint", "OpenAIShell", "Progress", "main"]

# Options that set an API setting, and the name .openai shows as that setting's source.
API_OPTIONS = {
    "base-url": "base_url",
    "organization": "organization",
    "project": "project",
    "timeout": "timeout",
    "max-retries": "max_retries",
}
OPTION_OF = {setting: f"--{option}" for option, setting in API_OPTIONS.items()}
# Options followed by a value (apsw's and ours), so that they can be told from SQL arguments.
VALUE_OPTIONS = {
    "init",
    "separator",
    "nullvalue",
    "encoding",
    "cmd",
    "cache-ttl",
    "sqlite3-rows",
    "port",
    "archive",
    *API_OPTIONS,
}
# An option whose name holds one of these may carry a secret: refused, and its value never echoed.
SECRET_WORDS = ("key", "token", "secret")
# Flags (apsw removed the dashes) that set an attribute of the shell to True.
FLAGS = {
    "demo": "demo",
    "demo-server": "demo_server",
    "sqlite3-loader": "loader",
    "readonly": "readonly",
    "allow-writes": "allow_writes",
}
# How box mode starts on a terminal, whatever apsw's version: as `.mode box`, as wide as the terminal.
BOX_OPTIONS = {
    "quote": False,
    "string_sanitize": 0,
    "null": "NULL",
    "truncate": 1024,
    "text_width": 0,
    "use_unicode": True,
}
# What .tables and .schema print before the OpenAI tables.
OPENAI_HEADING = "-- OpenAI tables (on this connection only, not in the database file):\n"
# A statement that looked up at least this many keys one at a time, each with a round trip, earns the IN hint:
# below it the concurrent form saves too little to interrupt the user.
HINT_MIN_KEYS = 5


class Progress(StatusLine):
    """The shell's status line on a terminal, shown once a statement has waited ``delay`` seconds.

    The wait hooks of the registrations call ``tick()`` about every 100 ms while a query waits for the API;
    counts are the requests and rows of ``log`` since ``start()``.
    """

    delay = 1.0

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._log: RequestLog | None = None
        self._base = (0, 0)
        self._began = self._quiet_since = 0.0

    def start(self, log: RequestLog) -> None:
        """A statement begins: count from here."""
        self._log = log
        self._base = (log.sent, log.items)
        self._began = self._quiet_since = time.monotonic()

    def tick(self) -> None:
        """Redraw the line if the terminal has been quiet for ``delay`` seconds."""
        now = time.monotonic()
        if self._log is None or now - self._quiet_since < self.delay:
            return
        pages, rows = self._log.sent - self._base[0], self._log.items - self._base[1]
        self.show(f"fetching: {pages} page{'s' * (pages != 1)}, {rows} rows, {now - self._began:.0f} s (Ctrl-C stops)")

    def clear(self) -> None:
        """Erase the line (before anything else is written), and wait another ``delay`` before redrawing."""
        super().clear()
        self._quiet_since = time.monotonic()

    def stop(self) -> None:
        """The statement ended."""
        self.clear()
        self._log = None


class JoinHint:
    """The one-time hint that a statement fetched many keys one at a time, where ``IN`` fetches them at once.

    A join from a local table hands the API table one key per outer row, so the keys are fetched one after
    another; ``IN (SELECT ...)`` hands over the whole set, fetched ``max_workers`` at a time. A join from one of
    the package's own tables reads ahead instead (readahead.py), and its scans are not counted. Call ``begin()``
    before each statement and ``end()`` after it: ``end()`` returns the hint (lines ending in a newline) the first
    time a statement qualifies, and None otherwise, including every time after that.
    """

    def __init__(self) -> None:
        self.given = False
        self._start: tuple[Registration, Counter[str], int] | None = None

    def begin(self, registration: Registration) -> None:
        """A statement starts on the connection of ``registration``: count from here."""
        if not self.given:
            self._start = (registration, registration.single_key_scans.copy(), registration.log.sent)

    def end(self) -> str | None:
        """The statement ended: the hint if it fetched enough keys one by one, else None."""
        start, self._start = self._start, None
        if start is None or self.given:
            return None
        registration, scans_before, sent_before = start
        scans = registration.single_key_scans - scans_before
        if not scans:
            return None
        name, count = scans.most_common(1)[0]
        # Cached answers cost no round trip, so only keys that sent requests count: a repeated join whose
        # answers all come from the cache earns no hint.
        if min(count, registration.log.sent - sent_before) < HINT_MIN_KEYS:
            return None
        self.given = True
        key = next(table.keys[0] for table in TABLES if table.name == name)
        return (
            f"hint: this statement fetched {count} keys of {name} one at a time (a join drives the table row by "
            "row);\n"
            f"hint: WHERE {key} IN (SELECT ...) fetches up to {registration.max_workers} at once "
            "(README: Joins and IN lists)\n"
        )


class Once:
    """Where ``.once`` sends output, until the line after the ``.once`` line has run (as in sqlite3)."""

    def __init__(self, previous: TextIO, stream: TextIO, process: subprocess.Popen[str] | None) -> None:
        self.previous = previous
        self.stream = stream
        self.process = process
        self._lines = 2  # the .once line itself, then the one whose output it takes

    def counts_down(self) -> bool:
        """A line has run: True when the output goes back."""
        self._lines -= 1
        return self._lines == 0

    def close(self) -> None:
        """Close the file, or close the command's input and wait for it to finish."""
        with contextlib.suppress(BrokenPipeError):  # a command that stopped reading early
            self.stream.close()
        if self.process is not None:
            self.process.wait()


class OpenAIShell(apsw.shell.Shell):
    """apsw's shell with the OpenAI tables registered on every connection it uses.

    Build it without arguments, then call ``run(args)``; ``main()`` does both. ``registrations`` maps each
    connection to what ``openai_vtab.register()`` returned for it.
    """

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.registrations: weakref.WeakKeyDictionary[apsw.Connection, Registration] = weakref.WeakKeyDictionary()
        self.settings: dict[str, str | None] = {}
        self.options: dict[str, str] = {}
        self.commands: list[str] = []
        self.cache_ttl: float | None = None  # --cache-ttl; None: register()'s default
        self.hint = JoinHint()
        self.demo = False
        self.demo_server = False
        self.port: int | None = None  # --port of --demo-server; 0 or None: any free port
        self.archive_path: str | None = None  # --archive FILE
        self.loader = False
        self.readonly = False  # -readonly: the database of the command line is opened read-only
        self.allow_writes = False  # --allow-writes: INSERT, UPDATE and DELETE may call the API
        self.rows_into: str | None = None  # --sqlite3-rows TABLE: print the rows as INSERTs for sqlite3
        self.api: FakeOpenAI | None = None
        self.failures = 0
        self.interrupted = False
        self.progress: Progress | None = None
        self._parsing = False
        self._running = False  # a line (SQL or dot-command) is being run, not read
        self._watching = False  # inside a user's process_sql: each statement is watched for the IN hint
        self._pending_hint: str | None = None  # for a statement that failed: shown after its error
        self._partial: list[str] = []  # the lines of an SQL text not complete yet
        self._first_line = 0
        self._once: Once | None = None
        self._line_names: list[str] = []  # line mode: the column names of the current statement
        self._line_rows = 0
        # Blobs are written as their bytes in the text modes (as sqlite3 does): bytes that are not UTF-8
        # travel as surrogates, which the output streams and the files of .output and .once write back as bytes.
        super().__init__(stdin=stdin, stdout=stdout, stderr=stderr, encoding="utf8:surrogateescape")
        reconfigure = getattr(self.stdout, "reconfigure", None)
        if reconfigure is not None and getattr(self.stdout, "errors", None) == "strict":
            reconfigure(errors="surrogateescape")
        self.prompt = "openai-vtab> "
        self.moreprompt = "        ...> "
        self.history_file = "~/.openai_vtab_history"  # not sqlite3's: these statements need the OpenAI tables
        if self.output == self.output_box:  # apsw's default on a terminal, with options that vary by version
            self.box_options = dict(BOX_OPTIONS)
        if _is_terminal(self.stderr):
            self.progress = Progress(self.stderr)

    # -- connections -------------------------------------------------------------------------------

    def _connection(self) -> apsw.Connection:
        # apsw's shell opens connections in several places (first use, .open) and adopts others
        # (.connection); checking here, where every use passes, covers them all.
        if self.readonly and self._db is None:
            # apsw opens the first database lazily, always read-write; -readonly applies to it alone, as in
            # sqlite3 (a later .open is read-write unless it says --readonly).
            self._open(self.dbfilename or ":memory:", apsw.SQLITE_OPEN_READONLY)
        db = apsw.shell.Shell.db.fget(self)
        if db not in self.registrations:
            options: dict[str, Any] = {} if self.cache_ttl is None else {"cache_ttl": self.cache_ttl}
            registration = register(db, **self.settings, **options, allow_writes=self.allow_writes)
            registration.on_wait.append(self._on_wait)
            registration.on_change.append(self._on_change)
            self.registrations[db] = registration
        return db

    db = property(_connection, apsw.shell.Shell.db.fset, None, "The current connection, with the OpenAI tables")

    def _open(self, name: str, flags: int) -> None:
        """Make a new connection to ``name`` the current one, keeping the others open as apsw's .open does."""
        try:
            connection = apsw.Connection(name, flags=flags | apsw.SQLITE_OPEN_URI)
        except apsw.Error as error:
            raise self.Error(f'unable to open database "{name}": {one_line(error)}') from None
        self._db, self.dbfilename = connection, name
        self.db_references.add(connection)

    def _on_change(self, line: str) -> None:
        # One line per object a write changed, as it happens: a statement that fails half-way has said what it did.
        # It is status, not a result: on stderr, so it never lands among the rows of a .output or .once file.
        self.write(self.stderr, line + "\n")

    def _on_wait(self) -> None:
        if self.progress is not None:
            self.progress.tick()

    # -- command line ------------------------------------------------------------------------------

    def usage(self) -> str:
        """The -help text: our options, then apsw's."""
        tables = ", ".join(t.name for t in TABLES)
        ours = f"""Usage: openai-vtab [OPTIONS] [DATABASE] [SQL|CMD] [SQL|CMD]...

SQLite with the OpenAI API as tables ({tables}, openai_requests).
The API key comes from OPENAI_API_KEY only, never from the command line.

OpenAI options:
   --demo               serve a sample organization from a fake API on 127.0.0.1
                        (no key, no network)
   --demo-server        serve that organization to other programs until Ctrl-C, and
                        print the OPENAI_BASE_URL and OPENAI_API_KEY to export
   --port PORT          the port of --demo-server (default: any free port)
   --archive FILE       copy the fine-tuning history into the SQLite file FILE (again:
                        only what changed), print a summary, and exit
   --base-url URL       API base URL (else OPENAI_BASE_URL, else https://api.openai.com/v1)
   --organization ORG   OpenAI-Organization header (else OPENAI_ORG_ID)
   --project PROJECT    OpenAI-Project header (else OPENAI_PROJECT_ID)
   --timeout SECONDS    per request attempt (default 60)
   --max-retries N      retries of a failed request (default 2)
   --cache-ttl SECONDS  reuse API answers for SECONDS (default {DEFAULT_CACHE_TTL:g});
                        0 turns the cache off
   --allow-writes       let INSERT, UPDATE and DELETE create, cancel, pause and resume
                        fine-tuning jobs, share checkpoints, cancel batches and delete
                        files (off by default; each changed object is printed)
   --sqlite3-loader     print SQL that loads [NAME=]QUERY results into temp tables of the
                        stock sqlite3 CLI (.read it there); a NAME alone loads that table

As in sqlite3:
   -cmd COMMAND         run COMMAND (SQL or dot-command) before the SQL arguments
   -readonly            open the database read-only (the OpenAI tables still work)
   -markdown            set output mode to 'markdown'
   -quote               set output mode to 'quote'
   -tabs                set output mode to 'tabs'
   -version             show the versions of openai-vtab, SQLite and APSW
"""
        # apsw's text starts with its own usage line; the option list after it holds.
        return ours + "\n" + super().usage().split("\n", 1)[1].lstrip("\n")

    def process_args(self, args: list[str]) -> tuple[str | None, list[str], list[str]]:
        """Parse the command line as apsw's shell does, but run nothing: ``run()`` orders -init, -cmd and SQL.

        Options may follow the database name, as in sqlite3 (apsw's parser takes none after it).
        """
        options, others = _split_options(args)
        for option in options:
            name = option[0].lstrip("-")
            if name == "help":
                break
            if name == "version":  # apsw's would show SQLite's version alone
                self.write(self.stdout, self.versions() + "\n")
                raise SystemExit(0)
        # apsw's parser treats every argument as -nocolour while NO_COLOR is set, swallowing options
        # such as -csv or -cmd; hide it while parsing and honour it here.
        no_colour = os.environ.pop("NO_COLOR", None)
        self._parsing = True
        try:
            result = super().process_args([*(arg for option in options for arg in option), *others])
        finally:
            self._parsing = False
            if no_colour is not None:
                os.environ["NO_COLOR"] = no_colour
        if no_colour is not None:
            self.command_colour(["off"])
        return result or (None, [], [])

    def versions(self) -> str:
        """openai-vtab's version, with those of the SQLite and APSW it runs on."""
        return f"openai-vtab {__version__} (SQLite {apsw.sqlite_lib_version()}, APSW {apsw.apsw_version()})"

    def process_unknown_args(self, args: list[str]) -> list[str] | None:
        """Our options (apsw has removed the leading dashes); None for anything else."""
        name, has_value, value = args[0].partition("=")
        if any(word in name.lower() for word in SECRET_WORDS):
            # Never echo what followed: it may be a key.
            raise self.Error(
                "the API key is never taken from the command line (it would show in process lists and shell "
                "history): set the OPENAI_API_KEY environment variable"
            )
        if name in FLAGS and not has_value:
            setattr(self, FLAGS[name], True)
            return args[1:]
        if name == "tabs" and not has_value:  # a mode of apsw's .mode, but not one of its options
            self.command_mode(["tabs"])
            return args[1:]
        if name not in API_OPTIONS and name not in ("cmd", "cache-ttl", "sqlite3-rows", "port", "archive"):
            if has_value:  # apsw would echo the value, which may be a secret
                raise self.Error(f"Unrecognized argument '{name}=...'")
            return None
        rest = args[1:]
        if not has_value:
            if not rest:
                raise self.Error(f"You need to specify a value after --{name}")
            value, rest = rest[0], rest[1:]
        if name == "cmd":
            self.commands.append(value)
        elif name == "sqlite3-rows":
            if not IDENTIFIER.fullmatch(value):
                raise self.Error(f"--sqlite3-rows takes a plain table name, not {value!r}")
            self.rows_into = value
        elif name == "cache-ttl":
            self.cache_ttl = _seconds(value)
            if self.cache_ttl is None:
                raise self.Error(f"--cache-ttl takes a number of seconds (0 turns the cache off), not {value!r}")
        elif name == "archive":
            self.archive_path = value
        elif name == "port":
            if not value.isdigit() or int(value) > 65535:
                raise self.Error(f"--port takes a port number (0 to 65535; 0: any free port), not {value!r}")
            self.port = int(value)
        else:
            self.options[API_OPTIONS[name]] = value
        return rest

    def command_read(self, cmd: list[str]) -> None:
        """read FILENAME: Processes SQL and commands in FILENAME (or Python if FILENAME ends with .py)

        Treats the specified file as input (a mixture of SQL and/or dot commands), going on after a failed
        statement unless bail is on.  If the filename ends in .py then it is treated as Python code
        instead, with 'db' the current database, 'shell' this shell and 'apsw' the apsw module.
        """
        if self._parsing:
            return
        if len(cmd) != 1 or cmd[0].lower().endswith(".py"):
            super().command_read(cmd)
            return
        with open(cmd[0], encoding=self.encoding[0]) as file:
            self.push_input()
            try:
                self.stdin, self.interactive, self.input_line_number = file, False, 0
                while (line := self.get_complete_line()) is not None:
                    self._attempt(self.process_complete_line, line)
            finally:
                self.pop_input()

    def get_line(self, prompt: str = "") -> str | None:
        """One line of input; at its end, a ``;`` for SQL that lacks only its last one (sqlite3 runs it)."""
        if prompt != self.moreprompt:
            self._partial = []
            self._first_line = self.input_line_number + 1  # where the next input begins, for error messages
        text = super().get_line(prompt)
        if text is not None:
            self._partial.append(text)
        elif self._partial and apsw.complete("\n".join(self._partial) + "\n;"):
            self._partial = []
            return ";"
        return text

    def command_open(self, cmd: list[str]) -> None:
        """open ?OPTIONS? ?FILE?: Opens a database connection (the current one stays if FILE cannot be opened)

        Options are --readonly (as in sqlite3), --wipe (delete FILE and its journals first) and --vfs VFS
        (newer apsw also takes --flags FLAGS).  If FILE is omitted then a memory database is opened.
        """
        if "--readonly" in cmd:
            rest = [arg for arg in cmd if arg != "--readonly"]
            if len(rest) != 1 or rest[0].startswith("--"):
                raise self.Error("open --readonly takes one file name and no other option")
            self._open(rest[0], apsw.SQLITE_OPEN_READONLY)
            return
        name = next((arg for arg in reversed(cmd) if not arg.startswith("--")), "") or ":memory:"
        current = self._db, self.dbfilename
        try:
            super().command_open(list(cmd))
        except apsw.Error as error:
            # apsw has already switched its file name: back to the connection that still works, as sqlite3.
            self._db, self.dbfilename = current
            raise self.Error(f'unable to open database "{name}": {one_line(error)}') from None

    def process_complete_line(self, command: str) -> None:
        """Run one SQL text or dot-command (nothing while the command line is being parsed); a ``.once``
        output ends after the next one, as in sqlite3."""
        if self._parsing:
            return
        self._running = True
        try:
            super().process_complete_line(command)
        finally:
            self._running = False
            if self._once is not None and self._once.counts_down():
                self._end_once()

    # -- errors, warnings, interrupts ---------------------------------------------------------------

    def handle_exception(self) -> None:
        """Report the error being handled as one line on stderr; re-raise it under bail, as apsw does."""
        error = sys.exc_info()[1]
        seen = getattr(error, "_handle_exception_saw_this", False)
        if error is not None and not seen and not isinstance(error, (SystemExit, KeyboardInterrupt)):
            self.failures += 1
            if not self.exceptions:  # .exceptions on asks for apsw's full report instead
                self.write_error(f"Error{self._location()}: {one_line(error)}\n")
                error._handle_exception_saw_this = True  # type: ignore[attr-defined]
        try:
            super().handle_exception()
        finally:
            self._write_hint()

    def _location(self) -> str:
        if self.interactive or self.input_line_number == 0:
            return ""
        name = getattr(self.stdin, "name", "<stdin>")
        # sqlite3 names the line the failing input began on.
        return f" near line {self._first_line}" + ("" if name == "<stdin>" else f" of {name}")

    def _query_details(self, sql: str, bindings: Any) -> Any:
        # apsw calls this before each statement of an SQL text: the previous one has finished here.
        if self._watching:
            self._write_hint(self.hint.end())
            self.hint.begin(self.registrations[self.db])
        # apsw's process_sql prints a statement that fails to prepare itself, over three lines (message,
        # statement, caret); raising it instead sends it through handle_exception like any other error.
        details = super()._query_details(sql, bindings)
        if details.error_text is not None:
            error = details.exception
            # The text of apsw's own errors, not apsw's rendering of it (which varies with its version).
            raise self.Error(one_line(error) if isinstance(error, apsw.Error) else details.error_text) from error
        return details

    def handle_interrupt(self) -> None:
        """Ctrl-C: interrupt the statement (apsw's way), and remember that a request may still be in flight.

        Reading a script or a pipe, sqlite3 reports the interrupted statement, stops reading and exits 1; apsw
        would leave silently.
        """
        self.interrupted = True
        interrupt = sys.exc_info()[1]
        # apsw calls this twice for one Ctrl-C (where the statement ran, then from its command loop); a Ctrl-C
        # while the next line was being read stopped no statement, and sqlite3 then ends quietly.
        if (not self.interactive or self.bail) and self._running and not hasattr(interrupt, "_openai_vtab_told"):
            self.failures += 1
            self.write_error(f"Error{self._location()}: interrupted\n")
        if interrupt is not None:
            interrupt._openai_vtab_told = True  # type: ignore[attr-defined]
        try:
            super().handle_interrupt()
        finally:
            self._write_hint()  # after the "^C": a join stopped for being slow is when the hint helps most

    def _show_warning(
        self, message: Warning | str, category: type[Warning], filename: str, lineno: int, *args: Any
    ) -> None:
        self.write(self.stderr, f"warning: {message}\n")

    def _attempt(self, action: Callable[..., Any], *args: Any) -> None:
        try:
            action(*args)
        except Exception:
            self.handle_exception()

    # -- output ------------------------------------------------------------------------------------

    def write(self, dest: TextIO, text: str) -> None:
        """Write ``text``, erasing the progress line first."""
        if self.progress is not None:
            self.progress.clear()
        super().write(dest, text)

    def output_column(self, column_names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """
        Items left aligned in space padded columns, each as wide as its
        widest value (as sqlite3 does since 3.33).  Use the .width
        command to fix column sizes instead (negative for right
        alignment); values wider than a fixed width are truncated.
        """
        # apsw's column mode sizes a column by its name alone, truncating ids and model names to 10 characters.
        texts = [[self._fmt_text_col(v) for v in row] for row in rows]
        widths = [
            self.widths[i] if i < len(self.widths) and self.widths[i] else max(len(t) for t in [name, *column])
            for i, (name, column) in enumerate(zip(column_names, zip(*texts, strict=True), strict=True))
        ]

        def cell(text: str, width: int) -> str:
            text = text[: abs(width)] if self.truncate else text
            return text.ljust(width) if width > 0 else text.rjust(-width)

        colour = self.colour
        if self.header:
            line = [
                colour.header + cell(name, w) + colour.header_ for name, w in zip(column_names, widths, strict=True)
            ]
            self.write(self.stdout, "  ".join(line) + "\n")
            if colour is self._colours["off"]:
                self.write(self.stdout, "  ".join("-" * abs(w) for w in widths) + "\n")
        for row, text in zip(rows, texts, strict=True):
            line = [colour.colour_value(v, cell(t, w)) for v, t, w in zip(row, text, widths, strict=True)]
            self.write(self.stdout, "  ".join(line) + "\n")

    output_column.all_at_once = True  # type: ignore[attr-defined]
    output_columns = output_column

    def _fmt_text_col(self, v: Any) -> str:
        # apsw writes "<Binary data>" for a blob, which loses it in an export; sqlite3 writes its bytes.
        if isinstance(v, bytes):
            return v.decode("utf-8", "surrogateescape")
        return super()._fmt_text_col(v)

    def output_csv(self, header: bool, line: Sequence[Any]) -> None:
        """
        Items in csv format, quoted as sqlite3 quotes them (also with a separator other than a comma: see
        .separator).  An empty string is "" and NULL nothing (the .nullvalue), so both survive an export.
        """
        # apsw's csv mode gives '' and NULL alike, and fails on a separator other than comma or tab.
        if header:
            if self.header:
                names = [self.colour.header + csv_field(name, self.separator) + self.colour.header_ for name in line]
                self.write(self.stdout, self.separator.join(names) + "\n")
            return
        fields = [
            self.colour.colour_value(
                v, self.nullvalue if v is None else csv_field(self._fmt_text_col(v), self.separator)
            )
            for v in line
        ]
        self.write(self.stdout, self.separator.join(fields) + "\n")

    def output_line(self, header: bool, line: Sequence[Any]) -> None:
        """
        One value per line in the form 'column = value', with a blank line between rows.
        """
        if header:  # each statement starts with its column names
            self._line_names, self._line_rows = list(line), 0
            return
        width = max(5, *(len(name) for name in self._line_names))
        text = "".join(
            f"{name:>{width}} = {self.colour.colour_value(v, self._fmt_text_col(v))}\n"
            for name, v in zip(self._line_names, line, strict=True)
        )
        # As sqlite3: a blank line between rows, none after the last (apsw ends each row with one).
        self.write(self.stdout, ("\n" if self._line_rows else "") + text)
        self._line_rows += 1

    output_lines = output_line

    def output_box(self, column_names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Outputs using line drawing and auto sizing columns"""
        # Also .mode table and qbox: apsw's command_mode sets box_options and sends all three here.
        options = {**BOX_OPTIONS, **self.box_options}
        level, limit, null = options["string_sanitize"], options["truncate"], options["null"]

        def text(value: Any) -> str:
            if isinstance(value, str):
                value = sanitize(value, level)
            if options["quote"]:
                shown = _sql_literal(value)
            elif isinstance(value, bytes):
                shown = f"[ {_count(len(value), 'byte')} ]"
            else:
                shown = null if value is None else str(value)
            return shown[:limit] + " ..." if 0 < limit < len(shown) else shown

        colour = self.colour
        width = options["text_width"] if options["text_width"] > 0 else self._width()
        self.write(
            self.stdout,
            box(
                column_names,
                rows,
                text=text,
                width=width,
                unicode=options["use_unicode"],
                paint=colour.colour_value,
                paint_header=lambda shown: colour.header + shown + colour.header_,
            ),
        )

    output_box.all_at_once = True  # type: ignore[attr-defined]

    def _width(self) -> int:
        """The terminal's width where the output is a terminal, else 80 (as apsw)."""
        try:
            return os.get_terminal_size(self.stdout.fileno()).columns
        except (AttributeError, OSError, ValueError):
            return 80

    def output_markdown(self, column_names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Markdown table format (a header always, as in sqlite3)"""
        texts = [[self._fmt_text_col(value) for value in row] for row in rows]
        self.write(self.stdout, markdown(column_names, texts))

    output_markdown.all_at_once = True  # type: ignore[attr-defined]

    def output_quote(self, header: bool, line: Sequence[Any]) -> None:
        """Escape answers as for SQL (column names too, with headers on), separated by commas"""
        if header:
            if self.header:
                names = [self.colour.header + apsw.format_sql_value(name) + self.colour.header_ for name in line]
                self.write(self.stdout, self.separator.join(names) + "\n")
            return
        values = [self.colour.colour_value(value, _sql_literal(value)) for value in line]
        self.write(self.stdout, self.separator.join(values) + "\n")

    def command_mode(self, cmd: list[str]) -> None:
        """mode MODE ?OPTIONS?: Sets output mode to one of"""
        super().command_mode(cmd)
        if cmd and cmd[0] == "quote":
            self.separator = ","  # as sqlite3's .mode quote; .separator changes it afterwards

    def process_sql(self, sql: str, bindings: Any = None, internal: bool = False, summary: Any = None) -> None:
        """Run SQL text, with the progress line (on a terminal) while it waits for the API, and the one-time
        hint about ``IN`` after a statement that fetched many keys one at a time."""
        self._write_hint()  # left by a failed statement whose error was not reported through handle_exception
        if self.progress is not None:
            self.progress.start(self.registrations[self.db].log)
        watching, self._watching = self._watching, not internal
        try:
            super().process_sql(sql, bindings, internal, summary)
        except BaseException:
            if self._watching:
                # The error comes first (handle_exception, handle_interrupt), then the hint.
                self._pending_hint = self.hint.end()
            raise
        else:
            if self._watching:
                self._write_hint(self.hint.end())
        finally:
            self._watching = watching
            if self.progress is not None:
                self.progress.stop()

    def _write_hint(self, hint: str | None = None) -> None:
        """Write ``hint``, or else the one left pending by a failed statement, on stderr."""
        hint, self._pending_hint = hint or self._pending_hint, None
        if hint:
            self.stdout.flush()  # the statement's rows first, where both streams reach one terminal or file
            self.write(self.stderr, hint)

    def command_openai(self, cmd: list[str]) -> None:
        """openai: Show the OpenAI API settings of this connection, and where each came from

        The API key is shown masked to its last four characters.  A setting comes from an option
        (--base-url, --organization, --project, --demo), from the environment (OPENAI_API_KEY,
        OPENAI_BASE_URL, OPENAI_ORG_ID, OPENAI_PROJECT_ID), or is the default.  Also lists the tables
        and what this connection has fetched so far.
        """
        if cmd:
            raise self.Error("openai takes no arguments")
        registration = self.registrations[self.db]
        rows = [(name, value, self._source(name, source)) for name, value, source in registration.config.describe()]
        name_width, value_width = (max(len(row[i]) for row in rows) for i in (0, 1))
        for name, value, source in rows:
            self.write(self.stdout, f"{name:<{name_width}}  {value:<{value_width}}  ({source})\n")
        tables = [f"{t.name}({', '.join(t.keys)})" if t.keys else t.name for t in TABLES]
        self.write(self.stdout, f"{'tables':<{name_width}}  {', '.join([*tables, 'openai_requests'])}\n")
        cache = registration.client.cache
        ttl = f"{cache.ttl:g} s" if cache is not None else "off"
        source = "--cache-ttl" if self.cache_ttl is not None else "default"
        self.write(self.stdout, f"{'cache_ttl':<{name_width}}  {ttl:<{value_width}}  ({source})\n")
        log = registration.log
        fetched = f"{_count(log.sent, 'request')}, {_count(log.items, 'row')}"
        self.write(self.stdout, f"{'fetched':<{name_width}}  {fetched}\n")

    def _source(self, name: str, source: str) -> str:
        if source != "option":
            return source
        return "--demo" if self.demo and name in ("api_key", "base_url") else OPTION_OF.get(name, source)

    # -- sqlite3's dot-commands ----------------------------------------------------------------------

    def command_once(self, cmd: list[str]) -> None:
        """once ?--bom? FILE: Send the output of the next SQL text or command only to FILE

        If FILE begins with | then the output goes to that shell command instead (the rest of the line,
        as in sqlite3).  --bom writes a UTF-8 byte order mark first.  The file is written in the
        current encoding (see .encoding).
        """
        bom = "--bom" in cmd
        args = [arg for arg in cmd if arg != "--bom"]
        if args and args[0] in ("-e", "-x"):
            raise self.Error(f"once {args[0]} (an editor or a spreadsheet) is not supported: give a FILE or |COMMAND")
        if not args or (len(args) > 1 and not args[0].startswith("|")):
            raise self.Error("once takes one FILE, or |COMMAND")
        self._end_once()
        self.stdout.flush()
        encoding, errors = self.encoding[0], self.encoding[1] or "surrogateescape"
        target = " ".join(args)
        if target.startswith("|"):
            process = subprocess.Popen(
                target[1:], shell=True, stdin=subprocess.PIPE, text=True, encoding=encoding, errors=errors
            )
            assert process.stdin is not None  # stdin=PIPE
            stream = process.stdin
        else:
            try:
                stream = open(target, "w", encoding=encoding, errors=errors)  # noqa: SIM115 - closed by _end_once
            except OSError as error:
                raise self.Error(f"cannot open {target!r} for .once: {error.strerror}") from None
            process = None
        if bom:
            stream.write("\ufeff")
        self._once = Once(self.stdout, stream, process)
        self.stdout = stream

    def command_output(self, cmd: list[str]) -> None:
        """output FILENAME: Send output to FILENAME (or stdout)

        The file is written in the current encoding (see .encoding).  A |COMMAND is not taken here (use .once
        |COMMAND for each statement).
        """
        if cmd and cmd[0].startswith("|"):
            # apsw would create a file named "|COMMAND".
            raise self.Error("output |COMMAND is not supported: use .once |COMMAND before each statement, or a file")
        super().command_output(cmd)

    def _end_once(self) -> None:
        """Back to the output from before ``.once``; the file closed, the command waited for."""
        once, self._once = self._once, None
        if once is not None:
            self.stdout = once.previous
            once.close()

    def command_tables(self, cmd: list[str]) -> None:
        """tables ?PATTERN ...?: Lists the tables and views matching the LIKE patterns, then the OpenAI tables

        Names are in columns, as sqlite3 lists them; those of attached databases as SCHEMA.NAME.  The
        OpenAI tables follow under a heading of their own: they exist on this connection only, not in the
        database file.  Each is also available as openai_NAME, which a PATTERN matches too.
        """
        own = sorted({name for pattern in cmd or ["%"] for name in self._own_tables(pattern)})
        self.write(self.stdout, name_columns(own))
        ours = self._openai_tables(cmd)
        if ours:
            self.write(self.stdout, OPENAI_HEADING)
            self.write(self.stdout, name_columns(ours))

    def _own_tables(self, pattern: str, kinds: tuple[str, ...] = ("table", "view")) -> list[str]:
        """The names of the database's objects of ``kinds`` that match the LIKE ``pattern``, as sqlite3
        lists them (SCHEMA.NAME outside main, none starting with sqlite_ unless asked for indexes)."""
        names = []
        for schema in [row[1] for row in self.db.execute("PRAGMA database_list")]:
            prefix = "" if schema == "main" else schema + "."
            table = "name" if "table" in kinds else "tbl_name"
            for (name,) in self.db.execute(
                f"SELECT name FROM {identifier(schema)}.sqlite_schema WHERE type IN ({', '.join('?' * len(kinds))}) "
                f"AND {table} LIKE ? AND (type = 'index' OR name NOT LIKE 'sqlite\\_%' ESCAPE '\\')",
                (*kinds, pattern),
            ):
                names.append(prefix + name)
        return names

    def _openai_tables(self, patterns: Sequence[str]) -> list[str]:
        """The OpenAI tables that match one of the LIKE ``patterns`` (without patterns, each under one name),
        leaving out those a table of the user's hides."""
        names = [*(table.name for table in TABLES), "openai_requests"]
        aliases = [ALIAS_PREFIX + table.name for table in TABLES]
        own = {name.rpartition(".")[2].lower() for name in self._own_tables("%")}
        if not patterns:
            # A table of the user's with the same name wins in SQL: ours is then reached by its alias.
            return sorted(name if name.lower() not in own else ALIAS_PREFIX + name for name in names)
        return sorted(
            name
            for name in [*names, *aliases]
            if name.lower() not in own
            and any(self.db.execute("SELECT ? LIKE ?", (name, pattern)).get for pattern in patterns)
        )

    def command_schema(self, cmd: list[str]) -> None:
        """schema ?PATTERN ...?: Shows the CREATE statements of the tables matching the LIKE patterns

        Without a PATTERN, the database's whole schema.  A PATTERN also matches the OpenAI tables, shown as
        declared to SQLite, hidden key columns included; they exist on this connection only, so .dump
        leaves them out.
        """
        super().command_schema(cmd)
        ours = self._openai_tables(cmd) if cmd else []
        if ours:
            self.write(self.stdout, OPENAI_HEADING)
        for name in ours:
            columns = [
                f"{self._fmt_sql_identifier(column)} {kind}" + (" HIDDEN" if hidden == 1 else "")
                for _, column, kind, _, _, _, hidden in self.db.execute("PRAGMA table_xinfo(" + identifier(name) + ")")
            ]
            self.write(self.stdout, f"CREATE TABLE {self._fmt_sql_identifier(name)}({', '.join(columns)});\n")

    def command_indexes(self, cmd: list[str]) -> None:
        """indexes ?TABLE?: Lists the names of the indexes, of the tables matching the LIKE pattern TABLE if given

        The OpenAI tables have none: a constraint on a required key column is what reaches the API.
        """
        if len(cmd) > 1:
            raise self.Error("indexes takes at most one table name pattern")
        names = sorted(self._own_tables(cmd[0] if cmd else "%", ("index",)))
        self.write(self.stdout, name_columns(names))

    def command_indices(self, cmd: list[str]) -> None:
        """indices ?TABLE?: The same as .indexes"""
        self.command_indexes(cmd)

    def command_version(self, cmd: list[str]) -> None:
        """version: Displays the versions of openai-vtab, SQLite, APSW and Python"""
        if cmd:
            raise self.Error("version takes no arguments")
        versions = {
            "openai-vtab": f"{__version__} - {os.path.dirname(os.path.abspath(__file__))}",
            "SQLite": f"{apsw.sqlite_lib_version()} {apsw.sqlite3_sourceid()}",
            "APSW": f"{apsw.apsw_version()} - {apsw.__file__}",
            "Python": f"{sys.version.split()[0]} - {sys.executable}",
        }
        width = max(len(name) for name in versions)
        for name, value in versions.items():
            self.write(self.stdout, f"{name:>{width}}  {value}\n")

    def command_quit(self, cmd: list[str]) -> None:
        """quit ?CODE?: Quit this program with optional exit code (the same as .exit)"""
        self.command_exit(cmd)

    # -- running -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Plain one-line warnings while the shell runs; stops the demo API and ends a ``.once`` afterwards."""
        with warnings.catch_warnings():
            # Each statement that meets an unknown id should say so, not only the first.
            warnings.simplefilter("always", OpenAIVTabWarning)
            warnings.showwarning = self._show_warning
            try:
                yield
            finally:
                self._end_once()  # a .once on the last line: its file is still written out
                if self.stdout is not self._original_stdout:
                    self.command_output(["stdout"])  # as sqlite3: the file of a .output is written out at exit
                if self.api is not None:
                    self.api.stop()

    def run(self, args: Sequence[str]) -> int:
        """Act on a command line (without the program name); returns the exit status.

        Order as in sqlite3: -init files, then -cmd commands, then the SQL arguments; without SQL
        arguments, the input (a prompt on a terminal). The status is 1 if any statement failed, unless
        the session was interactive.
        """
        try:
            database, inits, sqls = self.process_args(list(args))
            if self.demo_server:
                others = (self.demo, self.loader, self.rows_into, self.options, database, inits, sqls, self.commands)
                others += (self.archive_path,)
                if any(others):
                    raise self.Error("--demo-server takes no other option than --port, and no database or SQL")
                return serve(self.port or 0, self.stdout, self.stderr)
            if self.port is not None:
                raise self.Error("--port is the port of --demo-server, which serves the demo to other programs")
            self._configure()
            if self.archive_path is not None:
                if any((self.loader, self.rows_into, database, inits, sqls, self.commands)):
                    raise self.Error("--archive FILE takes API options (--demo, --timeout, ...), no database or SQL")
                return self._archive(self.archive_path)
            if self.loader and self.allow_writes:
                raise self.Error(
                    "--allow-writes does not go with --sqlite3-loader, which only loads query results: make "
                    "changes in the openai-vtab shell with --allow-writes, or from Python"
                )
            if self.loader:
                self.write(self.stdout, self.sqlite3_loader(sqls))
                return 0
            if self.rows_into is not None:
                return self.sqlite3_rows(self.rows_into, sqls)
            if self.readonly:
                self.db  # noqa: B018 - opened now: a file that cannot be opened read-only is one error, as in sqlite3
            for init in inits:
                self._attempt(self.command_read, [init])
            for command in self.commands:
                self._attempt(self.process_complete_line, command)
            for sql in sqls:
                self._attempt(self.process_complete_line, sql)
                if self.failures:
                    break  # as sqlite3: the SQL arguments after a failed one are not run
            interactive = not sqls and bool(self.interactive)
            if not sqls:
                if interactive and self.api is not None:
                    self.write(
                        self.stderr,
                        f"Demo mode: sample data for {len(self.api.state.jobs)} fine-tuning jobs, served by a fake "
                        "OpenAI API on 127.0.0.1 (no key, no network).\n"
                        "Try: SELECT status, count(*) FROM fine_tuning_jobs GROUP BY status;\n",
                    )
                self.cmdloop(
                    intro=f'{self.versions()}\nEnter ".help" for instructions, ".openai" for the API settings\n'
                )
        except Exception as error:
            if not getattr(error, "_handle_exception_saw_this", False):
                self.write_error(f"Error: {one_line(error)}\n")
            if self.loader or self.rows_into is not None:
                # sqlite3 .reads what we print and ignores our exit status: a statement that fails there
                # makes it see the failure too.
                failed = f"could not load {self.rows_into}" if self.rows_into else "--sqlite3-loader failed"
                self.write(self.stdout, failure(f"openai-vtab {failed}"))
            return 1
        return 1 if self.failures and not interactive else 0

    def _archive(self, path: str) -> int:
        """``--archive FILE``: copy the fine-tuning history into FILE (see ``archiving.run_archive``)."""
        if path.strip() in ("", ":memory:") or path.startswith("file:"):
            raise self.Error(f"--archive needs the name of a file to keep, not {path!r}: e.g. --archive history.db")
        options = {} if self.cache_ttl is None else {"cache_ttl": self.cache_ttl}
        status = run_archive(path, {**self.settings, **options}, stderr=self.stderr, progress_stream=self.stderr)
        # After Ctrl-C a request may still be on the wire: main() must not wait for it before exiting.
        self.interrupted = status == EXIT_INTERRUPTED
        return status

    def _configure(self) -> None:
        if self.demo:
            where = [setting for setting in self.options if setting in ("base_url", "organization", "project")]
            if where:
                given = ", ".join(OPTION_OF[setting] for setting in where)
                raise self.Error(f"--demo serves its own API: drop {given}")
            # Nothing meant for the real API (a key, an organization, ...) is used or shown, even on 127.0.0.1.
            for name in [name for name in os.environ if name.startswith("OPENAI_")]:
                del os.environ[name]
            self.api = FakeOpenAI().start()
            populate(self.api)
            self.settings = {**self.options, "api_key": self.api.api_key, "base_url": self.api.base_url}
        else:
            self.settings = dict(self.options)
        Config.resolve(**self.settings)  # a bad setting is reported now, not at the first query

    # -- the bridge to the stock sqlite3 CLI (sqlite3_bridge) -----------------------------------------

    def sqlite3_loader(self, specs: Sequence[str]) -> str:
        """SQL for the stock sqlite3 CLI that loads ``NAME=QUERY`` results (or tables NAME) into temp tables,
        each from this command run on the same database file; see ``sqlite3_bridge.loader``."""
        database = self.dbfilename or ":memory:"
        if database != ":memory:" and not database.startswith("file:"):
            database = os.path.abspath(database)
        return loader(self.db, database, [sys.executable, "-m", "openai_vtab", *self._api_arguments()], specs)

    def sqlite3_rows(self, table: str, sqls: Sequence[str]) -> int:
        """The child side of the loader: the rows of ``sqls`` as INSERTs into ``table``, for sqlite3 to read.

        The inserts run inside a savepoint that is released only if every statement succeeded; otherwise it
        is rolled back, and a statement that cannot succeed makes the failure an error in sqlite3 too (with
        ``.bail on`` it stops there). Either way the table never holds part of an answer.
        """
        self.header = False
        self.command_mode(["insert", table])
        self.write(self.stdout, rows_begin())
        ok = False
        try:
            for sql in sqls:
                self._attempt(self.process_complete_line, sql)
                if self.failures:
                    return 1
            ok = True
            return 0
        finally:  # also when interrupted
            self.write(self.stdout, rows_end(table, ok))

    def _api_arguments(self) -> list[str]:
        cache = [] if self.cache_ttl is None else [f"--cache-ttl={self.cache_ttl:g}"]
        if self.demo:
            return ["--demo", *cache]
        return [*(f"{OPTION_OF[setting]}={value}" for setting, value in self.options.items()), *cache]


def _split_options(args: Sequence[str]) -> tuple[list[list[str]], list[str]]:
    """The options of ``args`` in order, each with its value if it takes one, and the other arguments."""
    options: list[list[str]] = []
    others: list[str] = []
    rest = iter(args)
    for arg in rest:
        if not arg.startswith("-") or arg == "-":
            others.append(arg)
            continue
        option = [arg]
        name = arg.lstrip("-")
        if "=" not in name and name in VALUE_OPTIONS:
            value = next(rest, None)
            if value is not None:
                option.append(value)
        options.append(option)
    return options, others


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _seconds(text: str) -> float | None:
    """``text`` as a finite number of seconds, at least 0; None if it is not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _sql_literal(value: Any) -> str:
    """``value`` as an SQL literal, a blob in lower-case hex as sqlite3 writes it."""
    return f"X'{value.hex()}'" if isinstance(value, bytes) else apsw.format_sql_value(value)


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'s' * (n != 1)}"


def _interrupt_sqlite_on_ctrl_c(shell: OpenAIShell) -> None:
    """Make Ctrl-C stop SQLite itself, as sqlite3's own handler does.

    Python runs its SIGINT handler only between bytecodes, and a long SQLite step (a local recursive CTE) runs
    none, so KeyboardInterrupt alone would come only after the statement ended. The C-level handler writes to
    the wakeup fd at once; a thread reading it interrupts the connection (``interrupt()`` is thread-safe).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def watch(reader: socket.socket, writer: socket.socket) -> None:
        # ``writer`` is held here so that the signal handler's fd stays open as long as this thread runs.
        while data := reader.recv(64):
            connection = shell._db  # never the property: it would open a database on this thread
            if signal.SIGINT in data and connection is not None:
                connection.interrupt()

    threading.Thread(target=watch, args=(reader, writer), name="openai-vtab-ctrl-c", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``openai-vtab`` command (``argv`` without the program name); returns the exit status."""
    if hasattr(signal, "SIGPIPE"):
        # As sqlite3 and other filters: when the reader of our output goes away (| head), stop quietly.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    shell = OpenAIShell()
    _interrupt_sqlite_on_ctrl_c(shell)
    try:
        with shell.session():
            status = shell.run(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        status = int(shell.failures > 0)  # as sqlite3: 1 when Ctrl-C stopped a statement, 0 while reading
    except SystemExit as exit:  # .exit, .quit, -help, -version
        status = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
        if status == 0 and shell.failures and not shell.interactive:
            status = 1  # as sqlite3: a failed statement in batch use is not forgiven by a later .quit
    if shell.interrupted:
        # A request abandoned by Ctrl-C may still be waiting for its answer on a worker thread, and Python
        # would wait for it (up to the timeout) before exiting.
        for stream in (shell.stdout, sys.stdout, sys.stderr):
            stream.flush()
        os._exit(status)
    return status
