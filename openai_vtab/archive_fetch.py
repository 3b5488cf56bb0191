"""Reading the fine-tuning history from the live tables, as any user of the package would: SQL over one
connection with the OpenAI tables registered.

The per-job tables of many jobs are read with ``IN`` sets, so their pages are fetched concurrently
(``max_workers`` keys at a time). Events are the exception for a job the archive already has: they come
newest first, and reading stops at the first event the archive holds, so the job's older pages are never
requested; that needs a statement of its own per such job (an ``IN`` statement would go on to the job's next
page before it moved to the next job). A 404 for a listed job is an error here, not the live tables' "no rows
plus a warning": archiving it with no rows would look complete. A 404 for what a table follows (a job's
result file, which its owner may delete) is the opposite: the job is complete without those rows, for good.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import apsw

from .archive_store import columns_of, quote
from .errors import GoneWarning, UnknownKeyWarning
from .tables import Table

__all__ = ["JOB_KEY", "JobRows", "Live"]

JOB_KEY = "fine_tuning_job_id"
Row = tuple[Any, ...]


class JobRows(dict[str, dict[str, list[Row]]]):
    """Rows by job and table; ``gone`` maps a job to why some of its rows no longer exist (the 404 that said so)."""

    def __init__(self) -> None:
        super().__init__()
        self.gone: dict[str, str] = {}


class Live:
    """The live tables of one registered connection, read into rows in the archive's column order.

    ``per_job`` are the per-job tables (keyed by ``fine_tuning_job_id``); ``permissions`` is
    checkpoint_permissions when it is to be archived (an admin key is set), else None.
    """

    def __init__(
        self,
        connection: apsw.Connection,
        tables: Mapping[str, Table],
        per_job: Sequence[Table],
        permissions: Table | None,
    ) -> None:
        self.db = connection
        self.tables = tables
        self.per_job_tables = per_job
        self.permissions = permissions

    def _select(self, table: Table, where: str = "", args: tuple[Any, ...] = ()) -> apsw.Cursor:
        columns = ", ".join(quote(name) for name in columns_of(table))
        return self.db.execute(f"SELECT {columns} FROM {quote(table.name)} {where}", args)

    def _select_in(self, table: Table, key: str, values: Collection[str]) -> list[Row]:
        if not values:
            return []
        # The whole set reaches the table at once (README: Joins and IN lists), and is fetched concurrently.
        where = f"WHERE {quote(key)} IN (SELECT value FROM json_each(?))"
        return self._select(table, where, (json.dumps(sorted(values)),)).fetchall()

    def rows(self, name: str) -> list[Row]:
        """Every row of a table that needs no key."""
        return self._select(self.tables[name]).fetchall()

    def files(self, ids: Collection[str]) -> list[Row]:
        """The files whose id is in ``ids`` (the files list cannot be asked for ids: one scan, filtered)."""
        return self._select_in(self.tables["files"], "id", ids)

    def per_job(self, jobs: Sequence[str], known_events: Mapping[str, Collection[str]]) -> JobRows:
        """The rows of each job's per-job tables (and of its checkpoints' permissions), by job and table.

        ``known_events`` holds, for the jobs the archive already has, the event ids it holds: their events are
        read only down to the first of those. Raises the package's error (or UnknownKeyWarning, for a job
        the API does not know) if any job's rows cannot all be read; read one job at a time, a job whose
        followed resource is gone has no rows there, and the reason in ``gone``.
        """
        found = JobRows()
        for job in jobs:
            found[job] = {t.name: [] for t in self.per_job_tables}
            if self.permissions is not None:
                found[job][self.permissions.name] = []
        with warnings.catch_warnings():
            warnings.simplefilter("error", UnknownKeyWarning)
            for table in self.per_job_tables:
                if table.name == "job_events":
                    self._events(table, jobs, known_events, found)
                else:
                    self._rows_of(table, jobs, found)
            if self.permissions is not None:
                self._permissions(self.permissions, found)
        return found

    def _rows_of(self, table: Table, jobs: Sequence[str], found: JobRows) -> None:
        try:
            rows = self._select_in(table, JOB_KEY, jobs)
        except GoneWarning as gone:  # raised: UnknownKeyWarning and its kind are errors while the archive reads
            # Which job's resource is gone is certain only when there is one job.
            if len(jobs) != 1:
                raise
            found.gone[jobs[0]] = str(gone)
            return
        for row in rows:
            found[row[-1]][table.name].append(row)

    def _events(
        self,
        table: Table,
        jobs: Sequence[str],
        known_events: Mapping[str, Collection[str]],
        found: JobRows,
    ) -> None:
        fresh = [job for job in jobs if job not in known_events]
        for row in self._select_in(table, JOB_KEY, fresh):
            found[row[-1]][table.name].append(row)
        id_index = columns_of(table).index("id")
        for job, known in known_events.items():
            rows = found[job][table.name]
            # Newest first: the first event already archived ends the read, and with it the paging.
            cursor = self._select(table, f"WHERE {quote(JOB_KEY)} = ?", (job,))
            try:
                for row in cursor:
                    if row[id_index] in known:
                        break
                    rows.append(row)
            finally:
                cursor.close()

    def _permissions(self, table: Table, found: JobRows) -> None:
        checkpoints = self.tables["job_checkpoints"]
        name_index = columns_of(checkpoints).index("fine_tuned_model_checkpoint")
        job_of = {
            row[name_index]: job for job, tables in found.items() for row in tables[checkpoints.name] if row[name_index]
        }
        if not job_of:
            return
        for row in self._select_in(table, table.keys[0], job_of):
            found[job_of[row[-1]]][table.name].append(row)
