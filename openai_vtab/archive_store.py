"""The archive file: ordinary SQLite tables shaped as the live ones, written one whole job at a time.

Knows no HTTP and no virtual tables: it is handed rows. Each archived table has the live table's name and
visible columns, then its key columns (``fine_tuning_job_id``...) as ordinary columns, and a primary key of
the key columns and the row's identity, so that rows are upserted (never duplicated) and the per-job lookups
of the natural queries use the primary key. Rows are never deleted: the archive keeps what the platform has
since dropped. ``archive_jobs`` records, in the same transaction as a job's rows, which per-job tables (and
which of their columns) the job is complete with; ``archive_runs`` has one row per run.

The file uses SQLite's default rollback journal, not WAL: after each commit the one ``.db`` file holds
everything, so copying it is enough, and a killed process leaves a journal that the next open rolls back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import apsw

from .errors import ConfigurationError
from .tables import Table

__all__ = ["Store", "columns_of", "quote", "signature"]

# Another reader (sqlite3, Datasette) may hold the file for a moment when a job commits.
BUSY_TIMEOUT_MS = 10_000

RUNS_SCHEMA = """CREATE TABLE IF NOT EXISTS archive_runs(
    id INTEGER PRIMARY KEY,  -- 1, 2, ... in the order the runs started
    started TEXT,            -- UTC, as SQLite's datetime('now')
    finished TEXT,           -- NULL while it runs, and for a run that was killed
    status TEXT,             -- running, ok, failed, interrupted; unfinished: killed (seen by a later run)
    jobs INTEGER,            -- jobs the API listed
    fetched INTEGER,         -- jobs whose rows this run fetched and wrote
    unchanged INTEGER,       -- finished jobs the archive already had complete: only their job row refreshed
    failed INTEGER,          -- jobs (or models, files) that could not be archived this run: see failures
    pending INTEGER,         -- jobs not tried because the run stopped early
    requests INTEGER,        -- HTTP requests sent
    seconds REAL,
    counts TEXT,             -- JSON: rows in each table after the run
    failures TEXT,           -- JSON: [{"subject": job id or table, "message": ...}]
    notes TEXT               -- JSON, the same: jobs archived without rows the platform no longer has
)"""

JOBS_SCHEMA = """CREATE TABLE IF NOT EXISTS archive_jobs(
    fine_tuning_job_id TEXT PRIMARY KEY,
    tables TEXT,  -- the per-job tables the job is complete with, each as name:hash of its columns
    run INTEGER   -- archive_runs.id of the run that last wrote its rows
)"""

# Lookups by an id another table or the API refers to, beyond the primary keys: a fine-tuned model's job,
# the jobs of a base model, and a checkpoint's row for its permissions.
INDEXES = (
    ("fine_tuning_jobs", "fine_tuned_model"),
    ("fine_tuning_jobs", "model"),
    ("job_checkpoints", "fine_tuned_model_checkpoint"),
)


def columns_of(table: Table) -> list[str]:
    """The archived columns of ``table``: its visible columns, then its key columns."""
    return [c.name for c in table.columns] + list(table.keys)


def primary_key(table: Table) -> list[str]:
    """The key columns, then the columns that tell rows of one key apart."""
    return list(table.keys) + [name for name in table.identity if name not in table.keys]


def signature(table: Table) -> str:
    """``name:hash`` of a per-job table's archived columns: a job archived before a column was added is not
    complete, and is fetched again once."""
    digest = hashlib.sha256(" ".join(columns_of(table)).encode()).hexdigest()[:8]
    return f"{table.name}:{digest}"


def quote(name: str) -> str:
    """An SQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


class Store:
    """An archive file opened for one run: schema created or extended, then rows written.

    ``tables`` are the live tables archived (by name). Raises ConfigurationError when ``path`` cannot be an
    archive (not an SQLite file, not writable, or holding a table of one of these names that is not ours).
    """

    def __init__(self, path: str, tables: Sequence[Table]) -> None:
        self.path = path
        self.tables = {table.name: table for table in tables}
        try:
            self.db = apsw.Connection(path)
            self.db.setbusytimeout(BUSY_TIMEOUT_MS)
            with self.db:
                self._create()
        except apsw.BusyError:
            raise ConfigurationError(
                f"cannot archive into {path}: another program is writing to it (another archive run?); try again "
                "when it is done"
            ) from None
        except apsw.Error as error:
            raise ConfigurationError(
                f"cannot archive into {path}: {error}; give a new file name, or an archive openai-vtab made"
            ) from None
        self._upserts = {name: self._upsert_sql(table) for name, table in self.tables.items()}
        self._job_id = columns_of(self.tables["fine_tuning_jobs"]).index("id")

    def close(self) -> None:
        """Close the file (anything uncommitted is rolled back)."""
        self.db.close()

    # -- schema ------------------------------------------------------------------------------------

    def _create(self) -> None:
        tables = [row[0] for row in self.db.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")]
        if tables and "archive_runs" not in tables:
            # Someone's own database: archiving into it would add columns to, and rows into, tables of theirs.
            shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            raise ConfigurationError(
                f"cannot archive into {self.path}: it is a database of its own (tables {shown}), not an archive "
                "openai-vtab made; give a new file name (ATTACH it next to your database to join the two)"
            )
        for table in self.tables.values():
            existing = [row[1] for row in self.db.execute(f"PRAGMA table_info({quote(table.name)})")]
            if not existing:
                self.db.execute(self._create_sql(table))
                continue
            missing_key = [name for name in primary_key(table) if name not in existing]
            if missing_key:
                raise ConfigurationError(
                    f"cannot archive into {self.path}: its table {table.name} is not an archive of {table.name} "
                    f"(it has no {', '.join(missing_key)} column); give a new file name"
                )
            # An archive made before a column existed gets the column; older rows hold NULL there until
            # their job is fetched again (its archive_jobs signature no longer matches).
            for name in columns_of(table):
                if name not in existing:
                    self.db.execute(f"ALTER TABLE {quote(table.name)} ADD COLUMN {self._column_sql(table, name)}")
        for table_name, column in INDEXES:
            if table_name in self.tables:
                self.db.execute(
                    f"CREATE INDEX IF NOT EXISTS {quote(f'{table_name}_{column}')} "
                    f"ON {quote(table_name)}({quote(column)})"
                )
        self.db.execute(RUNS_SCHEMA)
        self.db.execute(JOBS_SCHEMA)

    def _column_sql(self, table: Table, name: str) -> str:
        column = next((c for c in table.columns if c.name == name), None)
        # JSON is declared TEXT: a declared type "JSON" would get NUMERIC affinity and turn '1' into 1.
        return f"{quote(name)} {column.sql_type if column is not None else 'TEXT'}"

    def _create_sql(self, table: Table) -> str:
        columns = [self._column_sql(table, name) for name in columns_of(table)]
        key = ", ".join(quote(name) for name in primary_key(table))
        return f"CREATE TABLE {quote(table.name)}({', '.join(columns)}, PRIMARY KEY ({key}))"

    def _upsert_sql(self, table: Table) -> str:
        names = columns_of(table)
        key = primary_key(table)
        updates = ", ".join(f"{quote(n)} = excluded.{quote(n)}" for n in names if n not in key)
        return (
            f"INSERT INTO {quote(table.name)}({', '.join(map(quote, names))}) "
            f"VALUES ({', '.join('?' * len(names))}) "
            f"ON CONFLICT({', '.join(map(quote, key))}) DO UPDATE SET {updates}"
        )

    # -- reading the state -------------------------------------------------------------------------

    def archived_jobs(self) -> dict[str, tuple[str | None, frozenset[str]]]:
        """Per archived job: its status as archived, and the per-job tables it is complete with."""
        return {
            job: (status, frozenset((tables or "").split()))
            for job, status, tables in self.db.execute(
                "SELECT a.fine_tuning_job_id, j.status, a.tables FROM archive_jobs a "
                "JOIN fine_tuning_jobs j ON j.id = a.fine_tuning_job_id"
            )
        }

    def ids(self, table: str, job: str) -> set[str]:
        """The ids of ``table``'s rows archived for ``job``."""
        return {
            row[0]
            for row in self.db.execute(
                f"SELECT id FROM {quote(table)} WHERE fine_tuning_job_id = ?",
                (job,),
            )
        }

    def counts(self) -> dict[str, int]:
        """Rows in each archived table."""
        return {name: self.db.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()[0] for name in self.tables}

    # -- writing -----------------------------------------------------------------------------------

    def write_job(self, job: Sequence[Any], rows: Mapping[str, Iterable[Sequence[Any]]], tables: str, run: int) -> None:
        """One job in one transaction: its job row, the rows of its per-job tables, and its completeness."""
        with self.db:
            self._write("fine_tuning_jobs", [job])
            for name, table_rows in rows.items():
                self._write(name, table_rows)
            self.db.execute(
                "INSERT INTO archive_jobs VALUES (?, ?, ?) "
                "ON CONFLICT(fine_tuning_job_id) DO UPDATE SET tables = excluded.tables, run = excluded.run",
                (job[self._job_id], tables, run),
            )

    def write_rows(self, table: str, rows: Iterable[Sequence[Any]]) -> None:
        """Upsert rows of a table in one transaction."""
        with self.db:
            self._write(table, rows)

    def _write(self, table: str, rows: Iterable[Sequence[Any]]) -> None:
        self.db.executemany(self._upserts[table], rows)

    def begin_run(self) -> int:
        """Record a run as started; a run still 'running' from before was killed. Returns the new run's id."""
        with self.db:
            self.db.execute("UPDATE archive_runs SET status = 'unfinished' WHERE status = 'running'")
            self.db.execute("INSERT INTO archive_runs(started, status) VALUES (datetime('now'), 'running')")
            return self.db.last_insert_rowid()

    def finish_run(self, run: int, fields: Mapping[str, Any]) -> None:
        """Record how run ``run`` ended (``fields``: columns of archive_runs)."""
        values = {
            name: json.dumps(value) if isinstance(value, (dict, list)) else value for name, value in fields.items()
        }
        assignments = ", ".join(f"{quote(name)} = ?" for name in values)
        with self.db:
            self.db.execute(
                f"UPDATE archive_runs SET finished = datetime('now'), {assignments} WHERE id = ?",
                (*values.values(), run),
            )
