"""Keep the organization's fine-tuning history in an SQLite file that outlives the platform.

    report = openai_vtab.archive("history.db")     # the shell: openai-vtab --archive history.db
    print(report.summary())

The archive holds ordinary tables named and shaped as the live ones (``archive_store.py``), read through the
live tables themselves (``archive_fetch.py``). A run lists every job; a job whose rows the archive already has
complete, in a status it never leaves, costs nothing more. The others are fetched in batches, their per-job
tables concurrently, and each job is written with all its rows in one transaction, so an archive is never
missing part of a job, whatever stops the run. A job whose rows cannot all be read is reported and left for
the next run; so is every job after a batch in which every job failed (the cause is then not one job).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import apsw

from .archive_fetch import JobRows, Live, Row
from .archive_store import Store, columns_of, signature
from .errors import AuthenticationError, OpenAIVTabError, PermissionDeniedError, UnknownKeyWarning, one_line
from .registration import Registration
from .status_line import StatusLine
from .tables import TABLES, Table

__all__ = ["ArchiveReport", "Failure", "ProgressLine", "archive", "run_archive"]

# The live tables an archive keeps, in the order its summary lists them.
ARCHIVED = (
    "fine_tuning_jobs",
    "job_checkpoints",
    "job_events",
    "job_metrics",
    "models",
    "files",
    "checkpoint_permissions",
)
# Tables with a row set per job; a job is complete when it has all of them (checkpoint permissions too, when
# they are archived: they hang off the job's checkpoints).
PER_JOB = ("job_checkpoints", "job_events", "job_metrics")
# Statuses a job never leaves: once archived complete in one of these, its per-job rows cannot change.
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
# Jobs fetched together: their per-job tables take about ceil(BATCH_JOBS / max_workers) round trips each.
BATCH_JOBS = 32
# Exit status after Ctrl-C, as a shell reports a process ended by SIGINT.
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Failure:
    """What could not be archived in a run: a job id (or a table, for models and files), and why; or, as a
    note, what a job was archived without because the platform no longer has it."""

    subject: str
    message: str


@dataclass
class ArchiveReport:
    """How an archive run went. ``status`` is ``ok``, ``failed`` (see ``failures``) or ``interrupted``.

    ``jobs`` the API listed; ``fetched`` jobs had their rows fetched and written; ``unchanged`` jobs were
    finished and complete already (only their job row was refreshed); ``pending`` jobs were not tried
    because the run stopped early. ``counts`` are the rows of each table in the archive after the run;
    ``requests`` the HTTP requests sent. ``notes`` name jobs archived without rows the platform no longer
    has (a deleted result file): not failures, as no run can fetch them.
    """

    path: str
    status: str = "running"
    jobs: int = 0
    fetched: int = 0
    unchanged: int = 0
    pending: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    notes: list[Failure] = field(default_factory=list)

    def summary(self) -> str:
        """One line: what the archive holds, what this run did, and what to do next if it did not finish."""
        held = ", ".join(f"{name} {count}" for name, count in self.counts.items())
        run = f"{self.fetched} job{'s' * (self.fetched != 1)} fetched, {self.unchanged} already complete"
        if self.pending:
            run += f", {self.pending} not tried"
        run += f"; {self.requests} request{'s' * (self.requests != 1)} in {self.seconds:.1f} s"
        if self.notes:
            run += f"; {len(self.notes)} note{'s' * (len(self.notes) != 1)} below"
        if self.status == "ok":
            return f"archived into {self.path}: {held} ({run})"
        if self.status == "interrupted":
            return f"interrupted archiving into {self.path}: {held} ({run}); run again to continue"
        failed = len(self.failures)
        return (
            f"archived into {self.path} with {failed} failure{'s' * (failed != 1)}: {held} ({run}); run again to retry"
        )


def archive(
    path: str | os.PathLike[str],
    *,
    progress: Callable[[ArchiveReport], None] | None = None,
    **register_options: Any,
) -> ArchiveReport:
    """Copy the organization's fine-tuning history into the SQLite file ``path`` (created if need be).

    ``register_options`` are those of ``openai_vtab.register()`` (key, base URL, timeout, max_retries,
    max_workers...); with an admin key, checkpoint permissions are archived too. ``progress`` is called with
    the report as the run goes (about every 100 ms while it waits for the API, and after each job).

    A job that cannot be archived is in the report's ``failures``, not raised. Raised: the package's error
    when nothing can be archived (no key, the jobs list fails, ``path`` is not an archive), and
    KeyboardInterrupt; either way every job written before is complete, and the next run goes on from there.
    """
    report = ArchiveReport(os.fspath(path))
    _archive(report, progress, register_options)
    return report


def _archive(
    report: ArchiveReport, progress: Callable[[ArchiveReport], None] | None, options: Mapping[str, Any]
) -> None:
    # openai_vtab/__init__ imports this module, so register is looked up when a run starts.
    from . import register

    started = time.monotonic()
    with contextlib.closing(apsw.Connection(":memory:")) as live:
        registration = register(live, **options)
        try:
            # No key, or a base URL that would carry it in clear text: say so before the file is created.
            registration.config.credential()
            tables = {t.name: t for t in TABLES if t.name in ARCHIVED}
            if registration.config.admin_api_key is None:
                del tables["checkpoint_permissions"]
            with contextlib.closing(Store(report.path, [tables[n] for n in ARCHIVED if n in tables])) as store:
                _Run(report, store, live, registration, tables, progress, started).run()
        except KeyboardInterrupt:
            registration.abandon()  # Ctrl-C: a request already on the wire is not waited for
            raise
        finally:
            registration.close()


class _Run:
    """One archive run: list the jobs, refresh models and files, then fetch and write the jobs in batches."""

    def __init__(
        self,
        report: ArchiveReport,
        store: Store,
        connection: apsw.Connection,
        registration: Registration,
        tables: Mapping[str, Table],
        progress: Callable[[ArchiveReport], None] | None,
        started: float,
    ) -> None:
        self.report = report
        self.store = store
        self.registration = registration
        self.progress = progress
        self.started = started
        per_job = [tables[name] for name in PER_JOB if name in tables]
        permissions = tables.get("checkpoint_permissions")
        self.live = Live(connection, tables, per_job, permissions)
        self.complete_with = frozenset(signature(t) for t in [*per_job, *([permissions] if permissions else [])])
        self.job_columns = {name: i for i, name in enumerate(columns_of(tables["fine_tuning_jobs"]))}
        self.archived: dict[str, tuple[str | None, frozenset[str]]] = {}
        self.id = store.begin_run()
        registration.on_wait.append(self.tick)

    def tick(self) -> None:
        """Bring the report's clock and request count up to date, and show it."""
        self._measure()
        if self.progress is not None:
            self.progress(self.report)

    def _measure(self) -> None:
        self.report.requests = self.registration.log.sent
        self.report.seconds = time.monotonic() - self.started

    def run(self) -> None:
        """Archive everything, and record in the archive how the run ended, however it ends."""
        try:
            self._archive()
        except KeyboardInterrupt:
            self.report.status = "interrupted"
            raise
        except Exception as error:
            self.report.status = "failed"
            self.report.failures.append(Failure(getattr(error, "table", None) or "archive", one_line(error)))
            raise
        finally:
            self._finish()

    def _archive(self) -> None:
        """List the jobs, refresh models and files, then fetch the jobs; per-job failures go into the report."""
        report = self.report
        jobs = self.live.rows("fine_tuning_jobs")
        report.jobs = report.pending = len(jobs)
        self.tick()
        self._table("models", self.live.rows)
        self._table("files", lambda _: self.live.files(self._files(jobs)))
        self.archived = self.store.archived_jobs()
        ids = self.job_columns["id"]
        done = [job for job in jobs if self._complete(job[ids])]
        self.store.write_rows("fine_tuning_jobs", done)
        report.unchanged = len(done)
        todo = [job for job in jobs if not self._complete(job[ids])]
        report.pending = len(todo)
        self.tick()
        for start in range(0, len(todo), BATCH_JOBS):
            if not self._batch(todo[start : start + BATCH_JOBS]):
                break
        report.status = "failed" if report.failures else "ok"

    def _finish(self) -> None:
        report = self.report
        self._measure()
        report.counts = self.store.counts()
        self.store.finish_run(
            self.id,
            {
                "status": report.status,
                "jobs": report.jobs,
                "fetched": report.fetched,
                "unchanged": report.unchanged,
                "failed": len(report.failures),
                "pending": report.pending,
                "requests": report.requests,
                "seconds": round(report.seconds, 3),
                "counts": report.counts,
                "failures": [{"subject": f.subject, "message": f.message} for f in report.failures],
                "notes": [{"subject": n.subject, "message": n.message} for n in report.notes],
            },
        )

    def _complete(self, job: str) -> bool:
        status, tables = self.archived.get(job, (None, frozenset()))
        return status in TERMINAL and self.complete_with <= tables

    def _table(self, name: str, read: Callable[[str], list[Row]]) -> None:
        """Refresh a table that is not per job; its failure is reported and the run goes on."""
        if name not in self.live.tables:
            return
        try:
            rows = read(name)
        except OpenAIVTabError as error:
            self.report.failures.append(Failure(name, one_line(error)))
            return
        self.store.write_rows(name, rows)

    def _files(self, jobs: Sequence[Row]) -> set[str]:
        """The ids of the files the jobs name: training and validation data, and results."""
        columns = self.job_columns
        ids: set[str] = set()
        for job in jobs:
            ids.update(f for f in (job[columns["training_file"]], job[columns["validation_file"]]) if f)
            results = job[columns["result_files"]]
            if results:
                ids.update(f for f in _json_list(results) if isinstance(f, str))
        return ids

    def _batch(self, jobs: Sequence[Row]) -> bool:
        """Fetch and write a batch of jobs; False when every one of them failed."""
        ids = [job[self.job_columns["id"]] for job in jobs]
        try:
            rows = self.live.per_job(ids, self._known_events(ids))
        except (OpenAIVTabError, UnknownKeyWarning) as error:
            if self._without_permissions(error):
                return self._batch(jobs)
            # One bad job fails the whole statement: one by one, the others still get in (the pages
            # already fetched come from the response cache) and the bad one is named.
            return sum(self._one(job, job_id) for job, job_id in zip(jobs, ids, strict=True)) > 0
        for job in jobs:
            self._write(job, rows)
        return True

    def _one(self, job: Row, job_id: str) -> bool:
        try:
            rows = self.live.per_job([job_id], self._known_events([job_id]))
        except (OpenAIVTabError, UnknownKeyWarning) as error:
            self.report.failures.append(Failure(job_id, one_line(error)))
            self.report.pending -= 1
            return False
        self._write(job, rows)
        return True

    def _without_permissions(self, error: BaseException) -> bool:
        """After the admin key was refused for checkpoint permissions: archive the jobs without them this run
        (a note says why; a later run with a working key fetches the jobs again), rather than fail every job
        that has checkpoints. True when that is what ``error`` was."""
        refused = isinstance(error, (AuthenticationError, PermissionDeniedError))
        if not refused or getattr(error, "table", None) != "checkpoint_permissions" or self.live.permissions is None:
            return False
        self.report.notes.append(Failure("checkpoint_permissions", f"{one_line(error)}; not archived in this run"))
        self.live.permissions = None
        self.complete_with = frozenset(signature(t) for t in self.live.per_job_tables)
        return True

    def _known_events(self, ids: Sequence[str]) -> dict[str, set[str]]:
        return {job: self.store.ids("job_events", job) for job in ids if job in self.archived}

    def _write(self, job: Row, rows: JobRows) -> None:
        job_id = job[self.job_columns["id"]]
        if job_id in rows.gone:
            self.report.notes.append(Failure(job_id, f"{one_line(rows.gone[job_id])}; archived without it"))
        self.store.write_job(job, rows[job_id], " ".join(sorted(self.complete_with)), self.id)
        self.report.fetched += 1
        self.report.pending -= 1
        self.tick()


def _json_list(text: str) -> list[Any]:
    value = json.loads(text)
    return value if isinstance(value, list) else []


class ProgressLine(StatusLine):
    """The archive's status line on a terminal, drawn once a run has gone on for ``delay`` seconds."""

    delay = 1.0
    # Redrawing more often than this only flickers.
    interval = 0.1

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._drawn = 0.0

    def draw(self, report: ArchiveReport) -> None:
        """Show how far the run has got."""
        now = time.monotonic()
        if report.seconds < self.delay or now - self._drawn < self.interval:
            return
        done = report.jobs - report.pending
        text = (
            f"archiving into {report.path}: {done}/{report.jobs} jobs, {report.requests} requests, "
            f"{report.seconds:.0f} s (Ctrl-C stops)"
        )
        self._drawn = now
        self.show(text)


def run_archive(
    path: str | os.PathLike[str],
    options: Mapping[str, Any],
    *,
    stderr: TextIO,
    progress_stream: TextIO | None = None,
) -> int:
    """The shell's ``--archive FILE``: archive with ``register()`` ``options``; returns the exit status.

    Prints the summary line, then one line per failure, on ``stderr`` (or ``Error: ...`` for what stopped
    the run as a whole); a progress line on ``progress_stream`` when it is a terminal. The status is 0 when
    everything was archived, 1 when anything failed, 130 after Ctrl-C (the jobs written before it stay;
    requests still in flight are abandoned, and a caller about to exit should not wait for them).
    """
    line = ProgressLine(progress_stream) if progress_stream is not None and progress_stream.isatty() else None
    report = ArchiveReport(os.fspath(path))
    try:
        _archive(report, line.draw if line is not None else None, options)
    except KeyboardInterrupt:
        report.status = "interrupted"
    except (OpenAIVTabError, apsw.Error) as error:
        if line is not None:
            line.clear()
        message = one_line(error)
        if isinstance(error, apsw.Error):  # writing the file failed (locked too long, disk full...)
            message = f"cannot write {report.path}: {message}; the jobs written before are complete: run again"
        stderr.write(f"Error: {message}\n")
        return 1
    if line is not None:
        line.clear()
    stderr.write(report.summary() + "\n")
    for failure in report.failures:
        stderr.write(f"failed: {failure.subject}: {failure.message}\n")
    for note in report.notes:
        stderr.write(f"note: {note.subject}: {note.message}\n")
    if report.status == "interrupted":
        return EXIT_INTERRUPTED
    return 0 if report.status == "ok" else 1
