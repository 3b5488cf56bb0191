"""Read-ahead: a join from one of the package's tables into another fetches the keys of the outer cursor's next
rows before SQLite asks for them. Each test states the SQL and the traffic: which keys were fetched, how many
ahead (``openai_requests.speculative``), and that no key is fetched twice. Never times.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from collections import Counter
from collections.abc import Callable

import apsw
import pytest
from shell_helpers import SCRIPT, environment

import openai_vtab
from openai_vtab import vtab
from openai_vtab.demo import populate
from openai_vtab.testing import FakeOpenAI

JOIN = "SELECT j.id, c.id, c.step_number FROM fine_tuning_jobs j JOIN job_checkpoints c ON c.fine_tuning_job_id = j.id"
IN = (
    "SELECT c.fine_tuning_job_id, c.id, c.step_number FROM job_checkpoints c "
    "WHERE c.fine_tuning_job_id IN (SELECT id FROM fine_tuning_jobs j"
)


def jobs(api: FakeOpenAI, count: int, **fields: object) -> list[str]:
    """``count`` jobs with two checkpoints and an event each, newest first (the API's order)."""
    made = []
    for n in range(count):
        job = api.add_job(id=f"ftjob-ra{n:02d}", **fields)["id"]
        api.add_checkpoints(job, 2)
        api.add_event(job, f"event of {job}")
        made.append(job)
    return made[::-1]


def fetched(api: FakeOpenAI, route: str = "checkpoints") -> Counter[str]:
    """How many times each job's ``route`` was requested."""
    return Counter(r.keys[0] for r in api.requests_to(route))


def speculative(db: apsw.Connection) -> int:
    return db.execute("SELECT count(*) FROM openai_requests WHERE speculative").fetchone()[0]


def test_a_join_between_our_tables_reads_ahead_and_fetches_each_key_once(
    api: FakeOpenAI, connect: Callable[..., apsw.Connection]
) -> None:
    made = jobs(api, 12)
    api.latency = 0.3  # long enough for the requests read ahead to overlap (beside other test workers)
    db = connect(max_workers=4)
    # The IN form on its own connection: the reference for rows and traffic.
    expected = sorted(connect().execute(IN + ")").fetchall())
    api.clear()
    assert sorted(db.execute(JOIN).fetchall()) == expected
    assert fetched(api) == Counter(made)  # every job once: nothing fetched twice, nothing skipped
    # Jobs after the first were asked for ahead, concurrently. (A guess still queued when SQLite asks for its key
    # is cancelled and fetched the normal way, so the count depends on thread timing; once per key does not.)
    assert 1 <= speculative(db) <= len(made) - 1
    assert api.max_in_flight > 1


def test_read_ahead_follows_jobs_to_events_and_checkpoints_to_permissions(
    api: FakeOpenAI, connect: Callable[..., apsw.Connection]
) -> None:
    made = jobs(api, 6)
    checkpoints = [c["fine_tuned_model_checkpoint"] for job in made for c in api.state.checkpoints[job]]
    for checkpoint in checkpoints[::2]:
        api.add_permission(checkpoint, "proj_a")
    api.latency = 0.2  # so that guesses leave before SQLite asks for their keys (a queued one is fetched anew)
    db = connect()
    events = db.execute(
        "SELECT j.id, e.message FROM fine_tuning_jobs j JOIN job_events e ON e.fine_tuning_job_id = j.id"
    ).fetchall()
    assert sorted(events) == sorted((job, f"event of {job}") for job in made)
    assert fetched(api, "events") == Counter(made)
    permissions = db.execute(
        "SELECT p.fine_tuned_model_checkpoint FROM job_checkpoints c JOIN checkpoint_permissions p "
        "ON p.fine_tuned_model_checkpoint = c.fine_tuned_model_checkpoint WHERE c.fine_tuning_job_id = ?",
        (made[0],),
    ).fetchall()
    assert permissions == [(checkpoints[0],)]  # of the job's two checkpoints, the first is shared
    # The key is the checkpoint's model name (not its id): the second checkpoint was read ahead by that column.
    assert Counter(r.keys[0] for r in api.requests_to("permissions")) == Counter(checkpoints[:2])
    assert speculative(db) >= 1


def test_cheap_outer_constraints_keep_read_ahead_to_the_rows_sqlite_keeps(
    api: FakeOpenAI, connect: Callable[..., apsw.Connection]
) -> None:
    succeeded = []
    for n in range(6):  # interleaved: SQLite drops every other row of the outer loop
        succeeded.append(api.add_job(id=f"ftjob-ok{n}", status="succeeded")["id"])
        api.add_checkpoints(succeeded[-1], 1)
        api.add_checkpoints(api.add_job(id=f"ftjob-failed{n}", status="failed")["id"], 1)
    db = connect(max_workers=4)
    sql = JOIN + " WHERE j.status = 'succeeded' AND j.estimated_finish IS NULL"
    plan = db.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
    assert "check status =; check estimated_finish IS NULL" in plan[0][3]
    api.clear()
    rows = db.execute(sql).fetchall()
    assert {job for job, _, _ in rows} == set(succeeded)
    # The outer cursor skips the failed jobs itself, so they are never guessed: no waste at all.
    assert fetched(api) == Counter(succeeded)


def test_an_in_list_on_the_outer_table_keeps_read_ahead_to_its_rows(
    api: FakeOpenAI, connect: Callable[..., apsw.Connection]
) -> None:
    wanted = []
    for n in range(6):  # interleaved: SQLite drops every third row of the outer loop
        for status in ("running", "failed", "succeeded"):
            job = api.add_job(id=f"ftjob-{status}{n}", status=status)["id"]
            api.add_checkpoints(job, 1)
            if status != "succeeded":
                wanted.append(job)
    db = connect(max_workers=4, cache_ttl=0)
    sql = JOIN + " WHERE j.status IN ('running', 'failed')"
    assert "check status IN" in db.execute("EXPLAIN QUERY PLAN " + sql).fetchall()[0][3]
    api.clear()
    assert {job for job, _, _ in db.execute(sql).fetchall()} == set(wanted)
    # The IN set is taken whole: one list request, and no succeeded job is ever guessed.
    assert len(api.requests_to("jobs")) == 1
    assert fetched(api) == Counter(wanted)


@pytest.mark.parametrize(
    "where",
    [
        "j.status = 'failed'",
        "j.status = 'FAILED'",
        "j.status = 'failed' COLLATE NOCASE",
        "j.status = NULL",
        "j.status = 1",
        "j.fine_tuned_model IS NULL",
        "j.fine_tuned_model IS NOT NULL",
        "j.validation_file IS NULL AND j.status = 'succeeded'",
        "j.seed = 7",
        "j.seed = '7'",
        "j.status IN ('failed', 'succeeded')",
        "j.status IN ('FAILED', 1)",
        "j.status IN (NULL, 'failed')",
        "j.status IN (SELECT 'failed' WHERE 0)",
        "j.status COLLATE NOCASE IN ('failed')",
        "j.seed IN ('7', 9)",
        "j.fine_tuned_model IN ('ft:m0', 'ft:m4')",
    ],
)
def test_outer_checks_keep_exactly_the_rows_sqlite_keeps(
    api: FakeOpenAI, connect: Callable[..., apsw.Connection], where: str
) -> None:
    for n, status in enumerate(("succeeded", "failed", "FAILED", "1", "succeeded")):
        api.add_job(status=status, seed=7 if n % 2 else 8, fine_tuned_model=None if n % 2 else f"ft:m{n}")
    db = connect()
    ours = db.execute(f"SELECT id FROM fine_tuning_jobs j WHERE {where}").fetchall()
    db.execute("CREATE TABLE plain AS SELECT * FROM fine_tuning_jobs")
    theirs = db.execute(f"SELECT id FROM plain j WHERE {where}").fetchall()
    assert sorted(ours) == sorted(theirs)


def test_waste_stays_within_max_workers_when_the_outer_cannot_see_the_filter(
    api: FakeOpenAI, connect: Callable[..., apsw.Connection]
) -> None:
    made = jobs(api, 32)
    db = connect(max_workers=4)
    sql = JOIN + " WHERE unicode(substr(j.id, -1)) % 4 = 0"
    asked = {job for job, _, _ in db.execute(sql).fetchall()}
    assert asked == {job for job in made if int(job[-1]) % 4 == 0}
    counts = fetched(api)
    assert set(counts) >= asked
    assert max(counts.values()) == 1  # no key fetched twice
    assert len(counts) - len(asked) <= 4  # waste: keys fetched that the statement never asked for


def test_a_failed_guess_fails_only_a_statement_that_asks_for_its_key(
    api: FakeOpenAI, connect: Callable[..., apsw.Connection]
) -> None:
    made = jobs(api, 6)
    bad = made[1]  # guessed from the first row, and passed by
    api.fail(500, times=100, match=f"/{bad}/checkpoints")
    api.latency = 0.2  # so that the guess surely leaves before the statement ends (a queued one is never sent)
    db = connect(max_retries=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a warning about the key nobody asked for
        rows = db.execute(JOIN + " WHERE j.id != ?", (bad,)).fetchall()
    assert {job for job, _, _ in rows} == set(made) - {bad}
    assert db.execute(
        "SELECT status, speculative FROM openai_requests WHERE path LIKE ?", (f"%{bad}%",)
    ).fetchall() == [(500, 1)]
    # Asked for, the same failure is raised exactly as fetching that key alone raises it.
    with pytest.raises(openai_vtab.InternalServerError) as alone:
        connect(max_retries=0).execute("SELECT * FROM job_checkpoints(?)", (bad,)).fetchall()
    with pytest.raises(openai_vtab.InternalServerError) as joined:
        db.execute(JOIN).fetchall()
    assert str(joined.value) == str(alone.value)


def test_a_key_unknown_to_the_api_warns_only_when_asked(
    api: FakeOpenAI, connect: Callable[..., apsw.Connection]
) -> None:
    made = jobs(api, 5)
    gone = made[2]
    api.fail(404, times=10, match=f"/{gone}/checkpoints")  # the job is listed, its checkpoints answer 404
    db = connect()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        db.execute(JOIN + " WHERE j.id != ?", (gone,)).fetchall()
    with pytest.warns(openai_vtab.UnknownKeyWarning, match=gone):
        db.execute(JOIN).fetchall()


def test_hung_guesses_neither_hold_the_statement_nor_take_workers_from_asked_keys(
    api: FakeOpenAI, connect: Callable[..., apsw.Connection]
) -> None:
    made = jobs(api, 8)
    hung = made[1:3]  # guessed from the first row, with both workers of the pool; never asked for
    for job in hung:
        api.inject("hang", match=f"/{job}/checkpoints", seconds=3.0)
    # Answers that take a while give the guesses time to leave before the statement ends (a guess still queued
    # at the end is cancelled and never sent, which would prove nothing here).
    api.latency = 0.2
    db = connect(max_workers=2)
    rows = db.execute(JOIN + " WHERE j.id NOT IN (?, ?)", hung).fetchall()
    assert {job for job, _, _ in rows} == set(made) - set(hung)
    # The statement is over while both guesses are still on the wire: their answers are not in the log yet.
    logged = {
        path.split("/")[3] for (path,) in db.execute("SELECT path FROM openai_requests WHERE path LIKE '%/checkpoints'")
    }
    assert logged.isdisjoint(hung)
    assert fetched(api) == Counter(made)


def test_a_hung_guess_does_not_hold_up_the_end_of_the_process(api: FakeOpenAI) -> None:
    made = jobs(api, 4)
    api.inject("hang", match=f"/{made[1]}/checkpoints", seconds=120.0)
    api.latency = 0.2  # so that the guess surely leaves before the statement ends
    script = textwrap.dedent(
        f"""
        import apsw, openai_vtab
        db = apsw.Connection(":memory:")
        openai_vtab.register(db, api_key={api.api_key!r}, base_url={api.base_url!r})
        rows = db.execute({JOIN!r} + " WHERE j.id != ?", ({made[1]!r},)).fetchall()
        print(len(rows))
        """
    )
    # Without daemon threads, the interpreter would wait out the guess's 60 s read timeout at exit.
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["6"]
    assert len(api.requests_to("checkpoints")) == 4


def test_a_check_on_the_inner_table_still_reads_ahead(api: FakeOpenAI, connect: Callable[..., apsw.Connection]) -> None:
    made = jobs(api, 6)
    api.latency = 0.2  # so that guesses leave before SQLite asks for their keys (a queued one is fetched anew)
    db = connect()
    sql = JOIN + " WHERE c.fine_tuned_model_checkpoint IS NOT NULL"
    assert "check fine_tuned_model_checkpoint IS NOT NULL" in db.execute("EXPLAIN QUERY PLAN " + sql).fetchall()[1][3]
    assert len(db.execute(sql).fetchall()) == 12
    assert speculative(db) >= 1
    assert fetched(api) == Counter(made)


def test_a_hung_guess_does_not_hold_up_the_end_of_the_shell(api: FakeOpenAI) -> None:
    made = jobs(api, 4)
    api.inject("hang", match=f"/{made[1]}/checkpoints", seconds=120.0)
    api.latency = 0.2  # so that the guess surely leaves before the statement ends
    sql = (
        "SELECT count(*) FROM fine_tuning_jobs j JOIN job_checkpoints c ON c.fine_tuning_job_id = j.id "
        f"WHERE j.id != '{made[1]}'"
    )
    done = subprocess.run(
        [str(SCRIPT), ":memory:", sql], capture_output=True, text=True, env=environment(api), timeout=30
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "6\n", "")
    assert len(api.requests_to("checkpoints")) == 4


def test_a_join_from_a_local_table_does_not_read_ahead_and_counts_for_the_hint(api: FakeOpenAI) -> None:
    made = jobs(api, 5)
    db = apsw.Connection(":memory:", statementcachesize=0)
    registration = openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url)
    db.execute("CREATE TABLE mine(job_id TEXT)")
    db.executemany("INSERT INTO mine VALUES (?)", [(job,) for job in made])
    rows = db.execute(
        "SELECT m.job_id, c.id FROM mine m JOIN job_checkpoints c ON c.fine_tuning_job_id = m.job_id "
        "WHERE c.id IS NOT NULL"  # a check on the inner table: still one key per scan, for the shell's hint
    ).fetchall()
    assert len(rows) == 10
    assert speculative(db) == 0
    assert fetched(api) == Counter(made)
    assert registration.single_key_scans["job_checkpoints"] == 5
    db.execute(JOIN).fetchall()
    assert registration.single_key_scans["job_checkpoints"] == 5  # a join from our own table is not counted


CHAIN = (
    "SELECT j.id, c.id, p.id FROM fine_tuning_jobs j JOIN job_checkpoints c ON c.fine_tuning_job_id = j.id "
    "JOIN checkpoint_permissions p ON p.fine_tuned_model_checkpoint = c.fine_tuned_model_checkpoint LIMIT 1"
)


ROUTES = {"job_checkpoints": "checkpoints", "checkpoint_permissions": "permissions", "job_events": "events"}


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, object]]:
    """(route, key) of every key SQLite handed to an inner table's Filter (spied on, not replaced)."""
    keys: set[tuple[str, object]] = set()
    original = vtab.Cursor.Filter

    def spy(self: vtab.Cursor, num: int, name: str, args: tuple[object, ...]) -> None:
        keys.update((ROUTES.get(self.table.name, self.table.name), arg) for arg in args)
        original(self, num, name, args)

    monkeypatch.setattr(vtab.Cursor, "Filter", spy)
    return keys


def wasted(api: FakeOpenAI, asked: set[tuple[str, object]]) -> int:
    """Keys of the inner tables' routes fetched that SQLite never asked for."""
    return sum((r.route, r.keys[0]) not in asked for route in ROUTES.values() for r in api.requests_to(route))


@pytest.mark.parametrize("max_workers", [2, 8])
def test_a_chain_of_three_tables_wastes_at_most_max_workers_keys_per_statement(
    api: FakeOpenAI, connect: Callable[..., apsw.Connection], asked: set[tuple[str, object]], max_workers: int
) -> None:
    populate(api)  # the demo organization: most checkpoints are shared with no project, so the chain runs long
    api.latency = 0.05  # so that guesses leave before the statement ends (a guess still queued is never sent)
    db = connect(max_workers=max_workers)
    api.clear()
    assert len(db.execute(CHAIN).fetchall()) == 1
    # Both inner tables read ahead (jobs -> checkpoints, checkpoints -> permissions), from one budget: each
    # outer cursor with a budget of its own wasted 13 keys with max_workers=8, and 4 with 2.
    assert speculative(db) >= 2
    assert wasted(api, asked) <= max_workers
    counts = Counter((r.route, r.keys[0]) for r in api.requests if r.keys)
    assert max(counts.values()) == 1  # nothing fetched twice


def test_the_next_statement_gets_a_fresh_budget(
    api: FakeOpenAI, connect: Callable[..., apsw.Connection], asked: set[tuple[str, object]]
) -> None:
    made = jobs(api, 16)
    api.latency = 0.05
    db = connect(max_workers=2)
    db.execute(JOIN + " WHERE unicode(substr(j.id, -1)) % 4 = 0").fetchall()  # spends the statement's budget
    assert wasted(api, asked) == 2
    db.execute("DELETE FROM openai_requests")
    # Its cursors closed with it: the next statement reads ahead again, within a budget of its own.
    sql = "SELECT j.id, e.message FROM fine_tuning_jobs j JOIN job_events e ON e.fine_tuning_job_id = j.id"
    assert len(db.execute(sql).fetchall()) == len(made)
    assert speculative(db) >= 1
    assert fetched(api, "events") == Counter(made)


def test_a_statement_run_inside_another_shares_its_budget(
    api: FakeOpenAI, connect: Callable[..., apsw.Connection], asked: set[tuple[str, object]]
) -> None:
    made = jobs(api, 16)
    api.latency = 0.05
    db = connect(max_workers=2, cache_ttl=0)  # no cache: each nested statement fetches (and guesses) anew
    kept = "unicode(substr(j.id, -1)) % 4 = 0"  # a filter the jobs cannot check: guesses go wrong

    def events(_: str) -> int:
        # A nested statement: its cursors open while the caller's are, so both spend one budget. With a budget
        # per statement instead, each of the 4 calls would waste 2 more keys.
        sql = f"SELECT count(*) FROM fine_tuning_jobs j JOIN job_events e ON e.fine_tuning_job_id = j.id WHERE {kept}"
        return db.execute(sql).fetchone()[0]

    db.create_scalar_function("kept_events", events, 1)
    sql = (
        "SELECT j.id, kept_events(j.id) FROM fine_tuning_jobs j JOIN job_checkpoints c "
        f"ON c.fine_tuning_job_id = j.id WHERE {kept}"
    )
    ours = {job for job in made if int(job[-1]) % 4 == 0}
    assert set(db.execute(sql).fetchall()) == {(job, len(ours)) for job in ours}
    assert wasted(api, asked) <= 2


def test_a_join_cut_short_by_limit_wastes_at_most_max_workers_keys(
    api: FakeOpenAI, connect: Callable[..., apsw.Connection]
) -> None:
    made = jobs(api, 64)
    api.latency = 0.05  # so that guesses leave before the statement ends (a guess still queued is never sent)
    db = connect(max_workers=8)
    api.clear()
    rows = db.execute(JOIN + " LIMIT 3").fetchall()
    assert [job for job, _, _ in rows] == [made[0], made[0], made[1]]
    # Two keys asked for; the guesses SQLite never asks for stay within max_workers, and none is fetched twice.
    assert 2 <= len(api.requests_to("checkpoints")) <= 2 + 8
    assert set(fetched(api)) <= set(made[: 2 + 8])
    assert max(fetched(api).values()) == 1


def test_the_look_ahead_reaches_max_workers_when_every_key_is_asked_for(
    api: FakeOpenAI, connect: Callable[..., apsw.Connection]
) -> None:
    made = jobs(api, 32)
    api.latency = 0.2  # long enough for the requests read ahead to overlap (beside other test workers)
    db = connect(max_workers=4)
    api.clear()
    assert len(db.execute(JOIN).fetchall()) == 2 * len(made)
    assert fetched(api) == Counter(made)
    # max_workers guesses at once (beside the key SQLite asked for, whose guess was taken).
    assert api.max_in_flight >= 4
