"""The query planner: empty IN sets on every apsw, costs that survive SQLite's join-order heuristics, an
EXPLAIN QUERY PLAN people can read, missing-key advice that holds, and warnings that point at the user's line.

Each test states the SQL and the traffic it expects; expected rows come from the fake's own data.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import apsw
import pytest

import openai_vtab
from openai_vtab import vtab
from openai_vtab.testing import FakeOpenAI
from openai_vtab.vtab import KEY_EQ, KEY_IN, KEY_IN_ONE_BY_ONE, Plan, Step

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
K = "fine_tuning_job_id"
# The apsw releases that fail a statement whose IN set is empty before Filter runs
# (contrib/apsw_empty_in_repro.py); pyproject.toml excludes them.
DROPS_EMPTY_IN_SETS = ("3.54.0.0", "3.54.1.0")
IN = KEY_IN if vtab.whole_in_sets_work() else KEY_IN_ONE_BY_ONE  # how this apsw hands IN lists over


def job_with(api: FakeOpenAI, count: int, **fields: object) -> str:
    job = api.add_job(**fields)
    api.add_checkpoints(job["id"], count)
    return job["id"]


@pytest.fixture
def one_key_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plan as on an apsw that drops empty IN sets: IN lists are handed over one key per Filter call."""
    monkeypatch.setattr(vtab, "whole_in_sets_work", lambda: False)


def explain(db: apsw.Connection, sql: str, bindings: Sequence[object] = ()) -> str:
    return "\n".join(row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + sql, bindings))


# -- 1. empty IN sets --------------------------------------------------------------------------------


def test_an_empty_in_subquery_gives_no_rows_and_sends_no_checkpoints_request(
    api: FakeOpenAI, db: apsw.Connection
) -> None:
    job_with(api, 3, status="failed")
    sql = f"SELECT * FROM job_checkpoints WHERE {K} IN (SELECT id FROM fine_tuning_jobs WHERE status = 'nope')"
    assert db.execute(sql).fetchall() == []
    assert db.execute(f"SELECT count(*) FROM job_checkpoints WHERE {K} IN (SELECT 1 WHERE 0)").fetchall() == [(0,)]
    assert [r.route for r in api.requests] == ["jobs"]


def test_the_probe_knows_which_apsw_drops_empty_in_sets(
    api: FakeOpenAI, db: apsw.Connection, filter_calls: list[tuple[object, ...]]
) -> None:
    assert vtab.whole_in_sets_work() is (apsw.apswversion() not in DROPS_EMPTY_IN_SETS)
    db.execute("CREATE TABLE none_picked(id TEXT)")
    assert db.execute(f"SELECT * FROM job_checkpoints WHERE {K} IN (SELECT id FROM none_picked)").fetchall() == []
    if vtab.whole_in_sets_work():
        # The set reached Filter whole: None from apsw before 3.54, an empty set from one that is fixed.
        assert filter_calls in ([(None,)], [(set(),)])
    else:
        assert filter_calls == []  # one key at a time: SQLite loops over no keys at all
    assert api.requests == []


def test_where_empty_sets_fail_in_apsw_in_lists_go_one_key_at_a_time(
    one_key_at_a_time: None, api: FakeOpenAI, connect: Callable[..., apsw.Connection], filter_calls: list
) -> None:
    jobs = sorted(job_with(api, n) for n in (1, 2, 3))
    db = connect()
    sql = f"SELECT count(*) FROM job_checkpoints WHERE {K} IN (?, ?, ?)"
    assert db.execute(sql, jobs).fetchone() == (6,)
    assert sorted(filter_calls) == [(job,) for job in jobs]
    assert f"key {K} IN, one key at a time; used: (none)" in explain(db, sql, jobs)
    filter_calls.clear()
    assert db.execute(f"SELECT * FROM job_checkpoints WHERE {K} IN (SELECT 1 WHERE 0)").fetchall() == []
    assert filter_calls == []
    assert len(api.requests) == 3


def test_keys_of_an_in_list_taken_one_at_a_time_earn_no_hint(
    one_key_at_a_time: None, api: FakeOpenAI, connect: Callable[..., apsw.Connection]
) -> None:
    # The shell's hint suggests an IN list when a join fetched keys one by one; here the user wrote one.
    jobs = [job_with(api, 1) for _ in range(3)]
    db = apsw.Connection(":memory:", statementcachesize=0)
    registration = openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url)
    db.execute(f"SELECT * FROM job_checkpoints WHERE {K} IN (?, ?, ?)", jobs).fetchall()
    assert registration.single_key_scans["job_checkpoints"] == 0
    db.execute("CREATE TABLE mine(id TEXT)")
    db.executemany("INSERT INTO mine VALUES (?)", [(j,) for j in jobs])
    db.execute(f"SELECT * FROM mine m JOIN job_checkpoints c ON c.{K} = m.id").fetchall()
    assert registration.single_key_scans["job_checkpoints"] == 3


def test_recipes_work_for_an_organization_with_no_jobs(api: FakeOpenAI, db: apsw.Connection) -> None:
    # Their IN subqueries select nothing: no rows, and no checkpoints request.
    best = db.execute((EXAMPLES / "best_checkpoint_per_job.sql").read_text()).fetchall()
    db.execute((EXAMPLES / "snapshot.sql").read_text()).fetchall()
    snapshot = db.execute("SELECT (SELECT count(*) FROM jobs_snapshot), (SELECT count(*) FROM checkpoints_snapshot)")
    assert (best, snapshot.fetchone()) == ([], (0, 0))
    assert api.requests_to("checkpoints") == []


def test_pick_checkpoints_works_for_an_organization_with_no_succeeded_job(api: FakeOpenAI) -> None:
    job_with(api, 3, status="failed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(OPENAI_API_KEY=api.api_key, OPENAI_BASE_URL=api.base_url)
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "pick_checkpoints.py")], capture_output=True, text=True, env=env, timeout=60
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "0 jobs, 1 requests to the API\n")


# -- 2. join orders: stars, chains, self-joins --------------------------------------------------------

STARS = {
    "three-local-tables": (
        f"SELECT count(*) FROM t a JOIN job_checkpoints c ON c.{K} = a.id JOIN t b ON b.id = c.{K} "
        f"JOIN t d ON d.id = c.{K}"
    ),
    "five-local-tables": (
        f"SELECT count(*) FROM t a JOIN job_checkpoints c ON c.{K} = a.id JOIN t b ON b.id = c.{K} "
        f"JOIN t d ON d.id = c.{K} JOIN t e ON e.id = c.{K} JOIN t f ON f.id = c.{K}"
    ),
    "events-in-the-star": (
        f"SELECT count(*) FROM t a JOIN job_checkpoints c ON c.{K} = a.id "
        f"JOIN job_events e ON e.{K} = c.{K} JOIN t b ON b.id = c.{K}"
    ),
    "json-each-twice": (
        f"SELECT count(*) FROM t a JOIN job_checkpoints c ON c.{K} = a.id, "
        f"json_each(c.metrics) j1, json_each(c.metrics) j2"
    ),
    "self-join-star": (
        f"SELECT count(*) FROM t a JOIN job_checkpoints c ON c.{K} = a.id JOIN job_checkpoints c2 ON c2.{K} = c.{K} "
        f"JOIN job_checkpoints c3 ON c3.{K} = c.{K} JOIN t b ON b.id = c.{K}"
    ),
}


@pytest.mark.parametrize("shape", STARS)
def test_star_joins_get_their_rows_and_fetch_each_table_once(api: FakeOpenAI, db: apsw.Connection, shape: str) -> None:
    # SQLite's star-query heuristic once made every order that supplies the key look dearer than the one
    # that fails (MissingRequiredKeyError); with two tables around job_checkpoints it always worked.
    job = job_with(api, 3)
    job_with(api, 2)  # not in t: never fetched
    for n in range(2):
        api.add_event(job, f"event {n}")
    db.execute("CREATE TABLE t(id TEXT)")
    db.execute("INSERT INTO t VALUES (?)", (job,))
    checkpoints = api.state.checkpoints[job]
    expected = {
        "three-local-tables": len(checkpoints),
        "five-local-tables": len(checkpoints),
        "events-in-the-star": len(checkpoints) * 2,
        "json-each-twice": sum(len(c["metrics"]) ** 2 for c in checkpoints),
        "self-join-star": len(checkpoints) ** 3,
    }[shape]
    assert db.execute(STARS[shape]).fetchall() == [(expected,)]
    assert {(r.route, r.keys) for r in api.requests} <= {("checkpoints", (job,)), ("events", (job,))}
    assert len(api.requests_to("checkpoints")) == 1  # the cache answers the self-joins' repeats


# -- 3. EXPLAIN QUERY PLAN ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "shown"),
    [
        (f"SELECT step_number FROM job_checkpoints WHERE {K} = 'ftjob-a'", f"key {K}; used: step_number"),
        ("SELECT id, train_loss FROM job_checkpoints('ftjob-a')", f"key {K}; used: id, train_loss"),
        (f"SELECT count(*) FROM job_checkpoints WHERE {K} IN ('a', 'b')", f"key {K} {IN}; used: (none)"),
        ("SELECT step_number FROM job_checkpoints WHERE step_number = 3", f"MISSING {K}: will fail; used: step_number"),
        ("SELECT filename FROM files WHERE purpose = 'batch' LIMIT 3", "param purpose; limit; used: filename, purpose"),
        ("SELECT id FROM models LIMIT 2 OFFSET 1", "limit; offset; used: id"),
        (
            f"SELECT step_number FROM job_checkpoints WHERE {K} IN ('a', 'b') LIMIT 2",
            # SQLite offers LIMIT only when every other term is consumed: not with IN lists one key at a time.
            f"key {K} {IN}{'; limit' if IN == KEY_IN else ''}; used: step_number",
        ),
    ],
    ids=["key", "table-valued", "in-list", "missing-key", "param-and-limit", "limit-offset", "key-then-limit"],
)
def test_explain_query_plan_names_columns_and_marks_a_plan_that_will_fail(
    db: apsw.Connection, sql: str, shown: str
) -> None:
    assert f"VIRTUAL TABLE INDEX 0:{shown}" in explain(db, sql)


def test_a_plan_reads_back_as_written() -> None:
    plans = [
        Plan((Step("key", K, KEY_IN), Step("limit")), ("id", "step_number")),
        Plan((Step("key", K, KEY_EQ), Step("param", "purpose"), Step("offset")), ()),
        Plan((Step("key", K, KEY_IN_ONE_BY_ONE),), ("metrics",)),
        Plan((Step("key", "a"),), ("id",), missing=("b", "c")),
        Plan((), (), missing=(K,)),
    ]
    for plan in plans:
        assert Plan.parse(str(plan)) == plan


def test_filter_receives_the_plan_explain_shows(api: FakeOpenAI, db: apsw.Connection, monkeypatch) -> None:
    job = job_with(api, 2)
    plans: list[str] = []
    original = vtab.Cursor.Filter

    def spy(self: vtab.Cursor, num: int, name: str, args: tuple[object, ...]) -> None:
        plans.append(name)
        original(self, num, name, args)

    monkeypatch.setattr(vtab.Cursor, "Filter", spy)
    sql = f"SELECT id, step_number FROM job_checkpoints WHERE {K} IN ('{job}', 'ftjob-none')"
    with pytest.warns(openai_vtab.UnknownKeyWarning):
        rows = db.execute(sql).fetchall()
    assert sorted(step for _, step in rows) == [1, 2]
    assert plans == [f"key {K} {IN}; used: id, step_number"] * (1 if IN == KEY_IN else 2)
    assert plans[0] in explain(db, sql)


# -- 4. the missing-key error ---------------------------------------------------------------------------


def test_the_missing_key_error_gives_advice_for_an_or(api: FakeOpenAI, db: apsw.Connection) -> None:
    with pytest.raises(openai_vtab.MissingRequiredKeyError) as caught:
        db.execute(f"SELECT * FROM job_checkpoints WHERE {K} = 'ftjob-a' OR step_number = 1").fetchall()
    message = str(caught.value)
    assert "nor can an OR, unless each of its branches has fine_tuning_job_id = '...' and no COLLATE" in message
    assert "next to an OR: AND fine_tuning_job_id IN (every id it names)" in message
    assert api.requests == []


def test_an_or_with_a_collate_gets_its_rows_with_the_advised_in_list(api: FakeOpenAI, db: apsw.Connection) -> None:
    # Recent SQLite does not split an OR with a COLLATE in a branch into one lookup per branch, though every
    # branch names the key: the error then says so, and the IN list it advises always works.
    a, b = job_with(api, 3, id="ftjob-a"), job_with(api, 2, id="ftjob-b")
    the_or = f"({K} = '{a}' AND object = 'FINE_TUNING.JOB.CHECKPOINT' COLLATE NOCASE) OR {K} = '{b}'"
    expected = [(a, 1), (a, 2), (a, 3), (b, 1), (b, 2)]
    try:
        assert sorted(db.execute(f"SELECT {K}, step_number FROM job_checkpoints WHERE {the_or}")) == expected
    except openai_vtab.MissingRequiredKeyError as error:
        assert "nor can an OR, unless each of its branches has fine_tuning_job_id = '...' and no COLLATE" in str(error)
    advised = f"SELECT {K}, step_number FROM job_checkpoints WHERE {K} IN ('{a}', '{b}') AND ({the_or})"
    assert sorted(db.execute(advised)) == expected


# -- 5. warnings point at the user's statement -----------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        f"SELECT * FROM job_checkpoints WHERE {K} = ''",  # refused in Filter, before any request
        f"SELECT * FROM job_checkpoints WHERE {K} = 'ftjob-gone'",  # a 404 on the first page, in Filter
        f"SELECT * FROM mine m JOIN job_checkpoints c ON c.{K} = m.id",  # in Filter, for a join's second row
        f"SELECT * FROM job_checkpoints WHERE {K} IN ('ftjob-a', 'ftjob-gone')",  # in Next, after ftjob-a's rows
    ],
    ids=["blank-key", "unknown-key", "unknown-key-mid-join", "unknown-key-mid-scan"],
)
def test_warnings_point_at_the_users_statement(api: FakeOpenAI, db: apsw.Connection, sql: str) -> None:
    job_with(api, 150, id="ftjob-a")  # two pages: the 404 for the next key comes while reading them
    db.execute("CREATE TABLE mine(id TEXT)")
    db.executemany("INSERT INTO mine VALUES (?)", [("ftjob-a",), ("ftjob-gone",)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        rows = db.execute(sql).fetchall()
    assert len(rows) == (0 if "=" in sql and "JOIN" not in sql else 150)
    [warning] = caught
    assert issubclass(warning.category, openai_vtab.UnknownKeyWarning)
    assert (warning.filename, warning.lineno) == (__file__, line)


@pytest.mark.parametrize(
    "where",
    [
        "id IN (SELECT id FROM picked)",
        "status IN ('running', 'succeeded', 'failed')",
        "id IN (SELECT id FROM picked) AND status = 'running'",
    ],
)
def test_an_in_list_on_a_checked_column_scans_the_list_once(
    api: FakeOpenAI, connect: Callable[..., apsw.Connection], where: str
) -> None:
    # A check (= on the outer table's own column) taken for an IN list would make SQLite run Filter once per value,
    # and with the cache off each run is a full list request.
    ids = [api.add_job(status="running")["id"] for _ in range(4)]
    db = connect(cache_ttl=0)
    db.execute("CREATE TEMP TABLE picked(id)")
    db.executemany("INSERT INTO picked VALUES (?)", [(i,) for i in ids[:3]])
    rows = db.execute(f"SELECT id FROM fine_tuning_jobs WHERE {where}").fetchall()
    assert len(rows) == (4 if where.startswith("status") else 3)
    assert db.execute("SELECT count(*) FROM openai_requests").fetchone() == (1,)
