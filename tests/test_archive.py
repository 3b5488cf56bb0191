"""The durable archive: ordinary SQLite tables that keep the fine-tuning history after the platform stops.

Every run talks HTTP to the fake API. The archive is checked against what the fake holds and against the live
tables' own answers, after clean runs, re-runs, a failing job, an interrupt and a killed process.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

import openai_vtab
from openai_vtab import archive_store
from openai_vtab.archiving import BATCH_JOBS, TERMINAL, ArchiveReport, ProgressLine, archive, run_archive
from openai_vtab.config import mask_key
from openai_vtab.demo import populate
from openai_vtab.testing import FakeOpenAI

# The fake's routes that per-job tables read: job_metrics reads the job, then its result file's content.
PER_JOB = {"checkpoints": "job_checkpoints", "events": "job_events", "job": "job_metrics", "content": "job_metrics"}


@pytest.fixture
def demo() -> Iterator[FakeOpenAI]:
    """The demo organization: 14 jobs in every status, with checkpoints, events, files and models."""
    with FakeOpenAI() as api:
        populate(api)
        yield api


def options(api: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {"api_key": api.api_key, "base_url": api.base_url, **extra}


def run(api: FakeOpenAI, path: Path, **extra: Any) -> ArchiveReport:
    """One archive run; the fake's request log then holds that run's requests only (faults stay armed)."""
    api.requests.clear()
    return archive(path, **options(api, **extra))


def query(path: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the archive with the standard library, as any SQLite tool would."""
    with sqlite3.connect(path) as db:
        return db.execute(sql, args).fetchall()


def live(api: FakeOpenAI) -> apsw.Connection:
    db = apsw.Connection(":memory:")
    openai_vtab.register(db, **options(api))
    return db


def live_rows(api: FakeOpenAI, table: str, without: str = "") -> list[tuple[Any, ...]]:
    """The rows of a live table as the archive should hold them: visible columns, then the key columns
    (a per-job table's rows of job ``without`` left out)."""
    db = live(api)
    spec = next(t for t in openai_vtab.TABLES if t.name == table)
    columns = ", ".join(archive_store.columns_of(spec))
    if table == "files":  # only the files the jobs name
        jobs = db.execute("SELECT training_file, validation_file, result_files FROM fine_tuning_jobs").fetchall()
        named = {f for t, v, r in jobs for f in (t, v, *json.loads(r)) if f}
        return sorted(r for r in db.execute(f"SELECT {columns} FROM files") if r[0] in named)
    if spec.keys:
        where = "WHERE fine_tuning_job_id IN (SELECT id FROM fine_tuning_jobs WHERE id != ?)"
        return sorted(db.execute(f"SELECT {columns} FROM {table} {where}", (without,)).fetchall())
    return sorted(db.execute(f"SELECT {columns} FROM {table}").fetchall())


def archived_rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    spec = next(t for t in openai_vtab.TABLES if t.name == table)
    return sorted(query(path, f"SELECT {', '.join(archive_store.columns_of(spec))} FROM {table}"))


def children_requested(api: FakeOpenAI) -> dict[str, set[str]]:
    """Per route of a per-job table, the job ids the run asked for (no route for a job's result file)."""
    return {route: {r.keys[0] for r in api.requests_to(route)} for route in PER_JOB if route != "content"}


def result_lines(api: FakeOpenAI) -> int:
    """The steps in the result files of the fake's jobs (the demo serves them as plain CSV text)."""
    files = [job["result_files"][0] for job in api.state.jobs.values() if job["result_files"]]
    return sum(len(api.state.contents[f].decode().splitlines()) - 1 for f in files)


def non_terminal(api: FakeOpenAI) -> set[str]:
    return {job["id"] for job in api.state.jobs.values() if job["status"] not in TERMINAL}


# -- a first run ------------------------------------------------------------------------------------


def test_first_run_holds_what_the_fake_holds(demo: FakeOpenAI, tmp_path: Path) -> None:
    report = run(demo, tmp_path / "history.db")
    state = demo.state
    named = {f for j in state.jobs.values() for f in (j["training_file"], j["validation_file"], *j["result_files"])}
    assert report.status == "ok" and report.failures == []
    assert report.counts == {
        "fine_tuning_jobs": len(state.jobs),
        "job_checkpoints": sum(map(len, state.checkpoints.values())),
        "job_events": sum(map(len, state.events.values())),
        "job_metrics": result_lines(demo),
        "models": len(state.models),
        "files": len({f["id"] for f in state.files} & named),
    }
    assert (report.jobs, report.fetched, report.unchanged, report.pending) == (14, 14, 0, 0)
    assert report.requests == len(demo.requests)


@pytest.mark.parametrize(
    "table", ["fine_tuning_jobs", "job_checkpoints", "job_events", "job_metrics", "models", "files"]
)
def test_archived_rows_are_the_live_tables_rows(demo: FakeOpenAI, tmp_path: Path, table: str) -> None:
    run(demo, tmp_path / "history.db")
    rows = archived_rows(tmp_path / "history.db", table)
    assert rows and rows == live_rows(demo, table)


def test_jobs_are_fetched_concurrently(tmp_path: Path) -> None:
    with FakeOpenAI(latency=0.3) as api:  # long enough to overlap, even beside other test workers
        for _ in range(16):
            api.add_checkpoints(api.add_job()["id"], 3)
        run(api, tmp_path / "history.db")
        assert api.max_in_flight == openai_vtab.DEFAULT_MAX_WORKERS


# -- re-runs ----------------------------------------------------------------------------------------


def test_second_run_lists_the_jobs_and_fetches_only_unfinished_ones(demo: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    first = run(demo, path)
    second = run(demo, path)
    unfinished = non_terminal(demo)
    assert unfinished and len(unfinished) < len(demo.state.jobs)
    assert children_requested(demo) == {"checkpoints": unfinished, "events": unfinished, "job": unfinished}
    assert [r.route for r in demo.requests if r.route not in PER_JOB] == ["jobs", "models", "files"]
    assert demo.requests_to("content") == []  # unfinished jobs have no result file yet
    assert second.requests == len(demo.requests) == 3 + 3 * len(unfinished)
    assert (second.fetched, second.unchanged) == (len(unfinished), len(demo.state.jobs) - len(unfinished))
    assert second.counts == first.counts  # nothing new: no duplicates either


def test_no_duplicates_after_many_runs(demo: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    for _ in range(3):
        report = run(demo, path)
    for table in report.counts:
        assert archived_rows(path, table) == live_rows(demo, table)


def test_new_events_of_a_running_job_stop_at_the_first_archived_one(api: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    job = api.add_job(status="running", finished_at=None)["id"]
    for n in range(250):
        api.add_event(job, f"step {n}")
    run(api, path)
    for n in range(5):
        api.add_event(job, f"later step {n}")
    report = run(api, path)
    events = api.requests_to("events")
    assert [r.params.get("after") for r in events] == [None]  # one page, not three
    assert report.counts["job_events"] == 255
    assert archived_rows(path, "job_events") == live_rows(api, "job_events")


def test_a_job_that_finished_since_is_fetched_once_more_then_left_alone(api: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    job = api.add_job(status="running", finished_at=None)["id"]
    api.add_checkpoints(job, 2)
    run(api, path)
    api.state.jobs[job].update(status="succeeded", finished_at=1_800_000_000)
    api.add_checkpoints(job, 1)
    run(api, path)
    assert children_requested(api) == {"checkpoints": {job}, "events": {job}, "job": {job}}
    assert query(path, "SELECT status FROM fine_tuning_jobs") == [("succeeded",)]
    assert len(archived_rows(path, "job_checkpoints")) == 3
    run(api, path)
    assert children_requested(api) == {"checkpoints": set(), "events": set(), "job": set()}


def test_rows_the_api_has_dropped_stay_in_the_archive(api: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    job = api.add_job(status="running", finished_at=None)["id"]
    api.add_checkpoints(job, 3)
    run(api, path)
    del api.state.checkpoints[job][0]  # the API keeps only the last checkpoints
    run(api, path)
    assert len(archived_rows(path, "job_checkpoints")) == 3


# -- failures ---------------------------------------------------------------------------------------


def test_a_failing_job_is_named_and_the_others_archived_then_a_clean_run_completes(
    demo: FakeOpenAI, tmp_path: Path
) -> None:
    path = tmp_path / "history.db"
    bad = sorted(demo.state.jobs)[5]
    demo.fail(500, match=f"/jobs/{bad}/events", times=100)
    report = run(demo, path, max_retries=0)
    assert report.status == "failed"
    [failure] = report.failures
    assert failure.subject == bad
    assert "job_events" in failure.message and bad in failure.message and "HTTP 500" in failure.message
    # Every other job is complete; the failing one left no part of itself behind.
    assert report.fetched == len(demo.state.jobs) - 1
    jobs = {job for (job,) in query(path, "SELECT id FROM fine_tuning_jobs")}
    assert jobs == set(demo.state.jobs) - {bad}
    assert query(path, "SELECT count(*) FROM job_checkpoints WHERE fine_tuning_job_id = ?", (bad,)) == [(0,)]
    # Falling back to one job at a time did not fetch the good jobs' pages again: the cache had them.
    assert all(len([r for r in demo.requests_to("checkpoints") if r.keys == (job,)]) == 1 for job in jobs)

    demo.clear()
    again = run(demo, path)
    assert again.status == "ok" and again.failures == []
    assert bad in children_requested(demo)["events"]
    for table in again.counts:
        assert archived_rows(path, table) == live_rows(demo, table)


def test_a_job_the_api_does_not_know_is_a_failure_not_an_empty_job(demo: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    bad = sorted(demo.state.jobs)[2]
    demo.fail(404, match=f"/jobs/{bad}/checkpoints", times=100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = run(demo, path)
    assert caught == []  # the live tables' warning is not passed on: it is a failure here
    assert [f.subject for f in report.failures] == [bad]
    assert "unknown" in report.failures[0].message
    assert query(path, "SELECT count(*) FROM fine_tuning_jobs WHERE id = ?", (bad,)) == [(0,)]


def test_a_failed_refresh_keeps_the_previous_complete_job(api: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    job = api.add_job(status="running", finished_at=None)["id"]
    api.add_event(job, "started")
    run(api, path)
    api.state.jobs[job].update(status="succeeded", finished_at=1_800_000_000)
    api.add_event(job, "done")
    api.fail(503, match="/events", times=100)
    report = run(api, path, max_retries=0)
    assert [f.subject for f in report.failures] == [job]
    # Still the job as it was archived, with its events then: not a succeeded job missing its last events.
    assert query(path, "SELECT status FROM fine_tuning_jobs") == [("running",)]
    assert query(path, "SELECT message FROM job_events") == [("started",)]
    api.clear()
    assert run(api, path).status == "ok"
    assert query(path, "SELECT status FROM fine_tuning_jobs") == [("succeeded",)]
    assert sorted(query(path, "SELECT message FROM job_events")) == [("done",), ("started",)]


def test_a_job_whose_result_file_was_deleted_is_archived_without_its_steps(demo: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    job = next(j for j in demo.state.jobs.values() if j["result_files"])
    del demo.state.contents[job["result_files"][0]]  # its owner deleted the file
    err = io.StringIO()
    assert run_archive(path, options(demo), stderr=err) == 0
    summary, note = err.getvalue().splitlines()
    assert "; 1 note below)" in summary
    assert note.startswith(
        f"note: {job['id']}: job_metrics: no rows for fine_tuning_job_id={job['id']!r}: "
        f"GET /files/{job['result_files'][0]}/content answered HTTP 404"
    )
    assert note.endswith("; archived without it")
    # The job is whole but for the file: its checkpoints and events are in, and it is not fetched again.
    for table in ("fine_tuning_jobs", "job_checkpoints", "job_events"):
        assert archived_rows(path, table) == live_rows(demo, table)
    assert query(path, "SELECT count(*) FROM job_checkpoints WHERE fine_tuning_job_id = ?", (job["id"],)) != [(0,)]
    assert archived_rows(path, "job_metrics") == live_rows(demo, "job_metrics", without=job["id"])
    assert run(demo, path).unchanged == len(demo.state.jobs) - len(non_terminal(demo))
    [(notes,)] = query(path, "SELECT notes FROM archive_runs WHERE id = 1")
    assert json.loads(notes)[0]["subject"] == job["id"]


def test_a_batch_in_which_every_job_fails_stops_the_run(api: FakeOpenAI, tmp_path: Path) -> None:
    jobs = [api.add_job()["id"] for _ in range(BATCH_JOBS + 8)]
    api.fail(503, match="/checkpoints", times=10_000)
    report = run(api, tmp_path / "history.db", max_retries=0)
    assert report.status == "failed"
    assert (len(report.failures), report.pending, report.fetched) == (BATCH_JOBS, 8, 0)
    # The list is newest first, and batches follow it: the oldest 8 were never asked for.
    assert not children_requested(api)["checkpoints"] & set(jobs[:8])
    assert ", 8 not tried; " in report.summary() and report.summary().endswith("run again to retry")


def test_the_jobs_list_failing_raises_and_the_run_is_recorded(demo: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    demo.fail(503, match="/fine_tuning/jobs", times=100)
    with pytest.raises(openai_vtab.InternalServerError, match="fine_tuning_jobs"):
        run(demo, path, max_retries=0)
    [(status, failures)] = query(path, "SELECT status, failures FROM archive_runs")
    assert status == "failed" and json.loads(failures)[0]["subject"] == "fine_tuning_jobs"


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"base_url": "http://127.0.0.1:9/v1"}, "no OpenAI API key"),
        ({"api_key": "sk-test-0000", "base_url": "http://example.com/v1"}, "plain http to a remote host"),
    ],
)
def test_settings_that_cannot_work_fail_before_the_file_is_created(
    tmp_path: Path, settings: dict[str, str], error: str
) -> None:
    with pytest.raises(openai_vtab.ConfigurationError, match=error):
        archive(tmp_path / "history.db", **settings)
    assert not (tmp_path / "history.db").exists()


def test_a_file_that_is_not_an_archive_is_refused(demo: FakeOpenAI, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    with pytest.raises(openai_vtab.ConfigurationError, match=r"cannot archive into .*notes.txt"):
        run(demo, text)
    assert demo.requests == []


@pytest.mark.parametrize(
    "schema",
    [
        "CREATE TABLE files(name TEXT, size INTEGER)",
        "CREATE TABLE files(id TEXT PRIMARY KEY, note TEXT)",  # shaped enough like ours to be written into
        "CREATE TABLE notes(body TEXT)",
    ],
)
def test_a_database_of_the_users_own_is_refused_and_left_as_it_was(
    demo: FakeOpenAI, tmp_path: Path, schema: str
) -> None:
    other = tmp_path / "mine.db"
    with sqlite3.connect(other) as db:
        db.execute(schema)
        db.execute("CREATE TABLE experiments(job_id TEXT)")
    before = other.read_bytes()
    with pytest.raises(openai_vtab.ConfigurationError, match=r"mine.db: it is a database of its own \(tables "):
        run(demo, other)
    assert other.read_bytes() == before
    assert demo.requests == []


def test_an_archive_with_a_table_that_is_not_ours_is_refused(demo: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    run(demo, path)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE files")
        db.execute("CREATE TABLE files(name TEXT, size INTEGER)")
    demo.clear()
    with pytest.raises(openai_vtab.ConfigurationError, match="table files is not an archive of files"):
        run(demo, path)
    assert demo.requests == []


def test_a_file_another_program_is_writing_is_reported(
    demo: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive_store, "BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "history.db"
    run(demo, path)
    # apsw, as the archive: another copy of SQLite in this process (the stdlib's) would not see its locks.
    other = apsw.Connection(str(path))
    other.execute("BEGIN EXCLUSIVE")
    with pytest.raises(openai_vtab.ConfigurationError, match="another program is writing to it"):
        run(demo, path)
    other.execute("ROLLBACK")

    def lock(self: ProgressLine, report: ArchiveReport) -> None:  # taken once the run has begun
        if not other.in_transaction:
            other.execute("BEGIN EXCLUSIVE")

    monkeypatch.setattr(ProgressLine, "draw", lock)
    err = Terminal()
    assert run_archive(path, options(demo), stderr=err, progress_stream=err) == 1
    assert (
        err.getvalue()
        == f"Error: cannot write {path}: database is locked; the jobs written before are complete: run again\n"
    )
    other.execute("ROLLBACK")
    assert run(demo, path).status == "ok"
    assert [s for (s,) in query(path, "SELECT status FROM archive_runs ORDER BY id")] == ["ok", "unfinished", "ok"]


def test_the_key_is_not_stored(demo: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    run(demo, path)
    demo.fail(401, match="/checkpoints", times=100)  # an error message echoing the key, stored in archive_runs
    demo.state.jobs[sorted(demo.state.jobs)[0]]["status"] = "running"
    run(demo, path)
    assert demo.api_key.encode() not in path.read_bytes()
    [(failures,)] = query(path, "SELECT failures FROM archive_runs WHERE status = 'failed'")
    assert "HTTP 401" in failures and mask_key(demo.api_key) in failures  # the message, with the key masked


# -- interrupted and killed runs -----------------------------------------------------------------


def test_an_interrupt_keeps_the_jobs_written_and_the_next_run_goes_on(demo: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "history.db"

    def ctrl_c(report: ArchiveReport) -> None:
        if report.fetched == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        archive(path, progress=ctrl_c, **options(demo))
    written = {job for (job,) in query(path, "SELECT fine_tuning_job_id FROM archive_jobs")}
    assert len(written) == 5
    assert query(path, "SELECT status, fetched, pending FROM archive_runs") == [("interrupted", 5, 9)]
    report = run(demo, path)
    finished = written - non_terminal(demo)
    assert finished and (report.fetched, report.unchanged) == (14 - len(finished), len(finished))
    for table in report.counts:
        assert archived_rows(path, table) == live_rows(demo, table)


def test_a_killed_run_leaves_whole_jobs_and_the_next_run_completes(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    with FakeOpenAI(latency=0.05) as api:
        for n in range(BATCH_JOBS + 16):
            job = api.add_job()["id"]
            api.add_checkpoints(job, 3 + n % 4)
            for e in range(30):
                api.add_event(job, f"event {e}")
        code = "import sys, openai_vtab; openai_vtab.archive(sys.argv[1], api_key=sys.argv[2], base_url=sys.argv[3])"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        child = subprocess.Popen([sys.executable, "-c", code, str(path), api.api_key, api.base_url], env=env)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and child.poll() is None:
                if path.exists() and _archived_jobs(path) > 0:
                    break
                time.sleep(0.005)
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait()
        assert child.returncode == -signal.SIGKILL
        written = _archived_jobs(path)
        assert 0 < written < len(api.state.jobs)

        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            # Every job that got in is whole: all its checkpoints and events, as the fake holds them.
            for (job,) in db.execute("SELECT fine_tuning_job_id FROM archive_jobs"):
                assert db.execute(
                    "SELECT count(*) FROM job_checkpoints WHERE fine_tuning_job_id = ?", (job,)
                ).fetchone()[0] == len(api.state.checkpoints[job])
                assert db.execute("SELECT count(*) FROM job_events WHERE fine_tuning_job_id = ?", (job,)).fetchone()[
                    0
                ] == len(api.state.events[job])
            assert db.execute("SELECT count(*) FROM fine_tuning_jobs").fetchone()[0] == written

        report = run(api, path)
        assert report.status == "ok" and report.unchanged == written
        for table in report.counts:
            assert archived_rows(path, table) == live_rows(api, table)
        assert [s for (s,) in query(path, "SELECT status FROM archive_runs ORDER BY id")] == ["unfinished", "ok"]


def _archived_jobs(path: Path) -> int:
    try:
        with sqlite3.connect(path, timeout=10) as db:
            return db.execute("SELECT count(*) FROM archive_jobs").fetchone()[0]
    except sqlite3.OperationalError:  # the tables are not there yet
        return 0


# -- reading the archive --------------------------------------------------------------------------


def test_the_standard_library_reads_the_archive(demo: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    run(demo, path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one self-contained file
        status, count = db.execute(
            "SELECT j.status, count(*) FROM fine_tuning_jobs j JOIN job_checkpoints c ON c.fine_tuning_job_id = j.id "
            "GROUP BY j.status ORDER BY j.status"
        ).fetchall()[0]
        assert (status, count) == ("cancelled", 1)
        metrics = db.execute("SELECT metrics FROM job_checkpoints LIMIT 1").fetchone()[0]
        assert isinstance(json.loads(metrics), dict)  # JSON columns stay JSON text


def test_register_on_the_archive_reads_the_archived_tables_and_warns(demo: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    run(demo, path)
    demo.clear()
    db = apsw.Connection(str(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        openai_vtab.register(db, **options(demo))
    clashes = sorted(str(w.message).split()[1] for w in caught if w.category is openai_vtab.TableNameClashWarning)
    archived = ["fine_tuning_jobs", "job_checkpoints", "job_events", "job_metrics", "models", "files"]
    assert clashes == [f"main.{t}" for t in sorted(archived)]
    job = sorted(demo.state.jobs)[0]
    archived = db.execute("SELECT count(*) FROM job_events WHERE fine_tuning_job_id = ?", (job,)).fetchone()
    assert archived == (len(demo.state.events[job]),) and demo.requests == []
    assert db.execute("SELECT count(*) FROM openai_job_events(?)", (job,)).fetchone() == archived
    assert len(demo.requests) == 1  # the live table, under its openai_ name


def test_natural_queries_use_the_keys(demo: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    run(demo, path)
    for sql in (
        "SELECT * FROM job_checkpoints WHERE fine_tuning_job_id = 'x' ORDER BY step_number",
        "SELECT * FROM job_events WHERE fine_tuning_job_id = 'x' ORDER BY created_at",
        "SELECT * FROM fine_tuning_jobs WHERE fine_tuned_model = 'x'",
        "SELECT * FROM models m JOIN fine_tuning_jobs j ON j.model = m.id WHERE m.id = 'x'",
        "SELECT * FROM job_checkpoints WHERE fine_tuned_model_checkpoint = 'x'",
    ):
        plan = " ".join(row[-1] for row in query(path, f"EXPLAIN QUERY PLAN {sql}"))
        assert "SCAN" not in plan, (sql, plan)


# The questions of README "Before fine-tuning winds down", in a form that runs on the live tables and on the
# archive alike (the table-valued form job_metrics('...') exists only on the live tables).
QUESTIONS = {
    "how each run trained, step by step": """
        SELECT j.user_provided_suffix, j.model, m.step, m.train_loss, m.valid_loss
        FROM job_metrics m JOIN fine_tuning_jobs j ON j.id = m.fine_tuning_job_id
        WHERE m.fine_tuning_job_id IN (SELECT id FROM fine_tuning_jobs)
        ORDER BY j.created_at, m.step""",
    "which fine-tuned models stop working, and when": """
        SELECT j.fine_tuned_model, b.shutdown_date
        FROM fine_tuning_jobs j JOIN models b ON b.id = j.model
        WHERE j.status = 'succeeded'
        ORDER BY b.shutdown_date IS NULL, b.shutdown_date, j.fine_tuned_model""",
    "complete and queryable after the platform stops": """
        SELECT 'jobs', count(*) FROM fine_tuning_jobs
        UNION ALL SELECT 'checkpoints', count(*) FROM job_checkpoints
            WHERE fine_tuning_job_id IN (SELECT id FROM fine_tuning_jobs)
        UNION ALL SELECT 'events', count(*) FROM job_events
            WHERE fine_tuning_job_id IN (SELECT id FROM fine_tuning_jobs)
        UNION ALL SELECT 'steps', count(*) FROM job_metrics
            WHERE fine_tuning_job_id IN (SELECT id FROM fine_tuning_jobs)""",
}


@pytest.mark.parametrize("question", QUESTIONS)
def test_each_question_is_one_query_with_one_answer_live_and_archived(
    demo: FakeOpenAI, tmp_path: Path, question: str
) -> None:
    path = tmp_path / "history.db"
    run(demo, path)
    sql = QUESTIONS[question]
    answer = live(demo).execute(sql).fetchall()
    assert len(answer) >= 4  # an answer worth comparing
    assert query(path, sql) == answer


def test_checkpoint_permissions_are_kept_with_an_admin_key(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    admin = "sk-test-admin-0000000000000000"
    with FakeOpenAI(admin_api_key=admin) as api:
        populate(api)
        run(api, path)
        assert "checkpoint_permissions" not in {name for (name,) in query(path, "SELECT name FROM sqlite_schema")}
        assert api.requests_to("permissions") == []

        # Jobs archived without their permissions are not complete once there is a key to read them.
        report = run(api, path, admin_api_key=admin)
        assert (report.fetched, report.unchanged) == (14, 0)
        shared = sum(map(len, api.state.permissions.values()))
        assert shared and report.counts["checkpoint_permissions"] == shared
        rows = query(path, "SELECT fine_tuned_model_checkpoint, project_id FROM checkpoint_permissions")
        assert sorted(rows) == sorted((c, p["project_id"]) for c, ps in api.state.permissions.items() for p in ps)

        report = run(api, path, admin_api_key=admin)
        assert report.fetched == len(non_terminal(api))
        assert report.counts["checkpoint_permissions"] == shared


def test_a_refused_admin_key_archives_the_jobs_without_permissions_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    admin = "sk-test-admin-0000000000000000"
    with FakeOpenAI(admin_api_key=admin) as api:
        populate(api)
        report = run(api, path, admin_api_key="sk-test-admin-wrong-000000000")
        assert (report.status, report.failures, report.fetched) == ("ok", [], 14)
        [note] = report.notes
        assert note.subject == "checkpoint_permissions"
        assert "HTTP 401" in note.message and note.message.endswith("not archived in this run")
        assert "wrong" not in note.message  # the key is masked
        assert query(path, "SELECT count(*) FROM job_metrics") == [(sum(1 for _ in _metric_lines(api)),)]
        # With the right key the next run fetches the jobs again, permissions included.
        report = run(api, path, admin_api_key=admin)
        assert (report.fetched, report.notes) == (14, [])
        assert report.counts["checkpoint_permissions"] == sum(map(len, api.state.permissions.values()))


def _metric_lines(api: FakeOpenAI) -> list[str]:
    return [line for content in api.state.contents.values() for line in content.decode().splitlines()[1:] if line]


def test_an_archive_made_before_a_column_existed_gets_it_filled(demo: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    run(demo, path)
    checkpoints = next(t for t in openai_vtab.TABLES if t.name == "job_checkpoints")
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE models DROP COLUMN shutdown_date")
        db.execute("ALTER TABLE job_checkpoints DROP COLUMN full_valid_loss")
        # As a version without that column recorded them: complete with a job_checkpoints of other columns.
        older = dataclasses.replace(
            checkpoints, columns=tuple(c for c in checkpoints.columns if c.name != "full_valid_loss")
        )
        db.execute(
            "UPDATE archive_jobs SET tables = replace(tables, ?, ?)",
            (archive_store.signature(checkpoints), archive_store.signature(older)),
        )
    report = run(demo, path)
    assert (report.fetched, report.unchanged) == (14, 0)
    for table in ("models", "job_checkpoints"):
        assert archived_rows(path, table) == live_rows(demo, table)
    assert run(demo, path).unchanged == 14 - len(non_terminal(demo))


# -- records of runs, the shell's helper ----------------------------------------------------------


def test_each_run_is_recorded(demo: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    first, second = run(demo, path), run(demo, path)
    rows = query(
        path, "SELECT status, jobs, fetched, unchanged, requests, counts, finished FROM archive_runs ORDER BY id"
    )
    assert [row[:5] for row in rows] == [
        ("ok", 14, 14, 0, first.requests),
        ("ok", 14, second.fetched, 14 - second.fetched, second.requests),
    ]
    assert json.loads(rows[1][5]) == second.counts and all(row[6] for row in rows)


def test_run_archive_prints_the_summary_and_failures(demo: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    err = io.StringIO()
    assert run_archive(path, options(demo), stderr=err) == 0
    [line] = err.getvalue().splitlines()
    assert line.startswith(f"archived into {path}: fine_tuning_jobs 14, job_checkpoints ")
    assert f"(14 jobs fetched, 0 already complete; {len(demo.requests)} requests in " in line

    bad = sorted(non_terminal(demo))[0]
    demo.fail(500, match=f"/jobs/{bad}/checkpoints", times=100)
    err = io.StringIO()
    assert run_archive(path, options(demo, max_retries=0), stderr=err) == 1
    summary, failure = err.getvalue().splitlines()
    assert "with 1 failure" in summary and summary.endswith("run again to retry")
    assert failure.startswith(f"failed: {bad}: job_checkpoints: GET /fine_tuning/jobs/{bad}/checkpoints failed")

    err = io.StringIO()
    assert run_archive(tmp_path / "other.db", {"base_url": demo.base_url}, stderr=err) == 1
    assert err.getvalue().startswith("Error: no OpenAI API key")


def test_run_archive_after_ctrl_c(demo: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def ctrl_c(self: ProgressLine, report: ArchiveReport) -> None:
        if report.fetched == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(ProgressLine, "draw", ctrl_c)
    err = Terminal()
    assert run_archive(tmp_path / "history.db", options(demo), stderr=err, progress_stream=err) == 130
    assert "interrupted archiving into" in err.getvalue() and "12 not tried; " in err.getvalue()
    assert err.getvalue().endswith("run again to continue\n")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_on_a_terminal(demo: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ProgressLine, "delay", 0.0)
    monkeypatch.setattr(ProgressLine, "interval", 0.0)
    err = Terminal()
    assert run_archive(tmp_path / "history.db", options(demo), stderr=err, progress_stream=err) == 0
    text = err.getvalue()
    assert "\rarchiving into " in text and "/14 jobs, " in text and "(Ctrl-C stops)" in text
    # Erased before the summary, which stands on a clean line.
    assert text.rsplit("\r\x1b[K", 1)[1].startswith("archived into ")


def test_no_progress_line_when_not_a_terminal(
    demo: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ProgressLine, "delay", 0.0)
    err = io.StringIO()
    assert run_archive(tmp_path / "history.db", options(demo), stderr=err, progress_stream=err) == 0
    assert "\r" not in err.getvalue()
