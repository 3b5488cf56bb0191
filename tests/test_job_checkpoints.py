"""job_checkpoints over real HTTP to the fake API: key pushdown, missing keys, NULLs, 404s, paging, encoding.

Each test states the SQL and the traffic it expects: how many requests, to which path, with which ``after``.
"""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Callable

import apsw
import pytest

import openai_vtab
from openai_vtab.testing import FakeOpenAI


def checkpoint_paths(api: FakeOpenAI) -> list[str]:
    return [r.path for r in api.requests_to("checkpoints")]


def job_with(api: FakeOpenAI, count: int, **fields: object) -> str:
    job = api.add_job(**fields)
    api.add_checkpoints(job["id"], count)
    return job["id"]


# -- 1. the key reaches the API ----------------------------------------------------------------------


def test_equality_fetches_that_jobs_checkpoints(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 3)
    job_with(api, 2)  # another job that must not be touched
    rows = db.execute(
        "SELECT step_number, fine_tuning_job_id FROM job_checkpoints WHERE fine_tuning_job_id = ?", (job,)
    ).fetchall()
    assert sorted(rows) == [(1, job), (2, job), (3, job)]
    assert checkpoint_paths(api) == [f"/v1/fine_tuning/jobs/{job}/checkpoints"]
    assert api.requests[0].params == {"limit": "100"}


def test_columns_flatten_metrics_and_leave_missing_ones_null(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = api.add_job()["id"]
    api.add_checkpoint(job, 7, {"train_loss": 0.5, "full_valid_loss": 0.75}, id="ftckpt_a", created_at=1_700_000_000)
    row = db.execute(
        "SELECT id, created_at, step_number, object, fine_tuned_model_checkpoint, train_loss, "
        "train_mean_token_accuracy, valid_loss, valid_mean_token_accuracy, full_valid_loss, "
        "full_valid_mean_token_accuracy, json_extract(metrics, '$.train_loss'), typeof(created_at) "
        "FROM job_checkpoints(?)",
        (job,),
    ).fetchone()
    assert row[:4] == ("ftckpt_a", 1_700_000_000, 7, "fine_tuning.job.checkpoint")
    assert row[4].startswith("ft:") and row[4].endswith(":ckpt-step-7")
    assert row[5:] == (0.5, None, None, None, 0.75, None, 0.5, "integer")


def test_in_list_reaches_filter_once_as_a_set(
    api: FakeOpenAI, db: apsw.Connection, filter_calls: list[tuple[object, ...]]
) -> None:
    jobs = [job_with(api, n) for n in (1, 2, 3)]
    count = db.execute("SELECT count(*) FROM job_checkpoints WHERE fine_tuning_job_id IN (?, ?, ?)", jobs).fetchone()[0]
    assert count == 6
    assert filter_calls == [({*jobs},)]
    assert sorted(checkpoint_paths(api)) == sorted(f"/v1/fine_tuning/jobs/{j}/checkpoints" for j in jobs)


def test_in_subquery_reaches_filter_once_as_a_set(
    api: FakeOpenAI, db: apsw.Connection, filter_calls: list[tuple[object, ...]]
) -> None:
    jobs = [job_with(api, 2) for _ in range(3)]
    db.execute("CREATE TABLE picked(job_id TEXT)")
    db.executemany("INSERT INTO picked VALUES (?)", [(j,) for j in jobs])
    count = db.execute(
        "SELECT count(*) FROM job_checkpoints WHERE fine_tuning_job_id IN (SELECT job_id FROM picked)"
    ).fetchone()[0]
    assert count == 6
    assert filter_calls == [({*jobs},)]
    assert len(api.requests) == 3


def test_in_list_keys_are_fetched_concurrently(api: FakeOpenAI, db: apsw.Connection) -> None:
    jobs = [job_with(api, 1) for _ in range(4)]
    api.latency = 0.4  # long enough for all four to overlap when sent together, even beside other test workers
    db.execute("SELECT count(*) FROM job_checkpoints WHERE fine_tuning_job_id IN (?, ?, ?, ?)", jobs).fetchall()
    assert api.max_in_flight == 4


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT e.name, c.step_number FROM my_experiments e JOIN job_checkpoints c ON c.fine_tuning_job_id = e.job_id",
        "SELECT e.name, c.step_number FROM job_checkpoints c JOIN my_experiments e ON c.fine_tuning_job_id = e.job_id",
        "SELECT e.name, c.step_number FROM job_checkpoints c, my_experiments e WHERE e.job_id = c.fine_tuning_job_id",
        "SELECT e.name, c.step_number FROM my_experiments e, job_checkpoints(e.job_id) c",
    ],
    ids=["local-first", "vtab-first", "comma-join", "table-valued"],
)
def test_join_with_local_table_fetches_once_per_local_row(api: FakeOpenAI, db: apsw.Connection, sql: str) -> None:
    first, second = job_with(api, 2), job_with(api, 1)
    job_with(api, 5)  # not in my_experiments: never fetched
    db.execute("CREATE TABLE my_experiments(name TEXT, job_id TEXT)")
    db.executemany("INSERT INTO my_experiments VALUES (?, ?)", [("lr-high", first), ("lr-low", second)])
    assert sorted(db.execute(sql).fetchall()) == [("lr-high", 1), ("lr-high", 2), ("lr-low", 1)]
    assert checkpoint_paths(api) == [f"/v1/fine_tuning/jobs/{j}/checkpoints" for j in (first, second)]


def test_table_valued_form_with_a_literal(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 4)
    assert db.execute(f"SELECT count(*) FROM job_checkpoints('{job}')").fetchone() == (4,)
    assert checkpoint_paths(api) == [f"/v1/fine_tuning/jobs/{job}/checkpoints"]


def test_the_readme_query_orders_by_loss_across_a_join(api: FakeOpenAI, db: apsw.Connection) -> None:
    jobs = [job_with(api, 10), job_with(api, 20)]
    db.execute("CREATE TABLE my_experiments(name TEXT, job_id TEXT)")
    db.executemany("INSERT INTO my_experiments VALUES (?, ?)", [("a", jobs[0]), ("b", jobs[1])])
    rows = db.execute(
        "SELECT e.name, c.step_number, c.full_valid_loss FROM my_experiments e "
        "JOIN job_checkpoints c ON c.fine_tuning_job_id = e.job_id "
        "WHERE c.full_valid_loss IS NOT NULL ORDER BY c.full_valid_loss LIMIT 3"
    ).fetchall()
    expected = sorted(
        (name, c["step_number"], c["metrics"]["full_valid_loss"])
        for name, job in zip("ab", jobs, strict=True)
        for c in api.state.checkpoints[job]
        if "full_valid_loss" in c["metrics"]
    )
    assert rows == sorted(expected, key=lambda r: r[2])[:3]


# -- 2. a query that cannot supply the key ------------------------------------------------------------


@pytest.mark.parametrize(
    "where",
    [
        "",
        "WHERE fine_tuning_job_id LIKE 'ftjob-%'",
        "WHERE fine_tuning_job_id > 'ftjob-'",
        "WHERE fine_tuning_job_id != 'ftjob-x'",
        "WHERE fine_tuning_job_id = 'ftjob-x' OR step_number = 3",
        "WHERE step_number = 3",
    ],
    ids=["no-constraint", "like", "range", "not-equal", "or-branch-without-key", "other-column"],
)
def test_query_without_the_key_fails_clearly_before_any_request(
    api: FakeOpenAI, db: apsw.Connection, where: str
) -> None:
    job_with(api, 1, id="ftjob-x")
    with pytest.raises(openai_vtab.MissingRequiredKeyError) as caught:
        db.execute(f"SELECT * FROM job_checkpoints {where}").fetchall()
    message = str(caught.value)
    assert "job_checkpoints needs fine_tuning_job_id" in message
    assert "WHERE fine_tuning_job_id = '...'" in message and "job_checkpoints('...')" in message
    assert "no query solution" not in message
    assert api.requests == []


def test_a_key_compared_under_another_collation_is_not_pushed_down(api: FakeOpenAI, db: apsw.Connection) -> None:
    # The API matches ids byte for byte; answering a NOCASE comparison with it would silently drop rows.
    job_with(api, 1, id="ftjob-a")
    with pytest.raises(openai_vtab.MissingRequiredKeyError, match="job_checkpoints needs fine_tuning_job_id"):
        db.execute("SELECT * FROM job_checkpoints WHERE fine_tuning_job_id = 'FTJOB-A' COLLATE NOCASE").fetchall()
    assert api.requests == []


def test_join_on_a_non_equality_fails_clearly(api: FakeOpenAI, db: apsw.Connection) -> None:
    db.execute("CREATE TABLE my_jobs(id TEXT); INSERT INTO my_jobs VALUES ('ftjob-a')")
    with pytest.raises(openai_vtab.MissingRequiredKeyError, match="job_checkpoints needs fine_tuning_job_id"):
        db.execute("SELECT * FROM my_jobs m JOIN job_checkpoints c ON c.fine_tuning_job_id LIKE m.id").fetchall()
    assert api.requests == []


def test_a_missing_key_in_one_branch_does_not_break_a_valid_plan(api: FakeOpenAI, db: apsw.Connection) -> None:
    # SQLite considers (and must reject by cost, not by exception) the plan without the key for each branch.
    a, b = job_with(api, 3), job_with(api, 2)
    rows = db.execute(
        "SELECT fine_tuning_job_id, step_number FROM job_checkpoints "
        "WHERE (fine_tuning_job_id = ? AND step_number > 1) OR fine_tuning_job_id = ?",
        (a, b),
    ).fetchall()
    assert sorted(rows) == sorted([(a, 2), (a, 3), (b, 1), (b, 2)])


# -- 3. NULL keys, unknown jobs, other errors ---------------------------------------------------------


def test_null_key_gives_no_rows_and_sends_nothing(api: FakeOpenAI, db: apsw.Connection) -> None:
    assert db.execute("SELECT * FROM job_checkpoints WHERE fine_tuning_job_id = ?", (None,)).fetchall() == []
    assert db.execute("SELECT * FROM job_checkpoints(NULL)").fetchall() == []
    db.execute("CREATE TABLE my_jobs(id TEXT); INSERT INTO my_jobs VALUES (NULL)")
    assert db.execute("SELECT * FROM my_jobs m JOIN job_checkpoints c ON c.fine_tuning_job_id = m.id").fetchall() == []
    assert db.execute("SELECT count(*) FROM job_checkpoints WHERE fine_tuning_job_id IN (NULL)").fetchall() == [(0,)]
    assert api.requests == []


def test_unknown_job_gives_no_rows_and_a_warning_naming_it(api: FakeOpenAI, db: apsw.Connection) -> None:
    known = job_with(api, 2)
    with pytest.warns(openai_vtab.UnknownKeyWarning, match="fine_tuning_job_id='ftjob-missing'") as caught:
        rows = db.execute(
            "SELECT count(*) FROM job_checkpoints WHERE fine_tuning_job_id IN ('ftjob-missing', ?)", (known,)
        ).fetchall()
    assert rows == [(2,)]
    assert "job_checkpoints" in str(caught[0].message)
    assert issubclass(openai_vtab.UnknownKeyWarning, UserWarning)
    assert len(api.requests) == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, openai_vtab.BadRequestError),
        (403, openai_vtab.PermissionDeniedError),
        (422, openai_vtab.UnprocessableEntityError),
        (500, openai_vtab.InternalServerError),
    ],
)
def test_other_http_errors_raise(
    api: FakeOpenAI, connect: Callable[..., apsw.Connection], status: int, error: type[Exception]
) -> None:
    job = job_with(api, 2)
    db = connect(max_retries=0)
    api.fail(status)
    with pytest.raises(error) as caught:
        db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    assert caught.value.status_code == status
    assert f"job_checkpoints: GET /fine_tuning/jobs/{job}/checkpoints failed with HTTP {status}" in str(caught.value)
    assert isinstance(caught.value, openai_vtab.OpenAIVTabError)


def test_404_on_a_keyless_table_raises_rather_than_warning(api: FakeOpenAI, connect: Callable[..., apsw.Connection]):
    db = connect(base_url=api.base_url + "/wrong-prefix")
    with pytest.raises(openai_vtab.NotFoundError, match="fine_tuning_jobs: GET /fine_tuning/jobs failed with HTTP 404"):
        db.execute("SELECT * FROM fine_tuning_jobs").fetchall()


# -- 4. paging ----------------------------------------------------------------------------------------


def test_paging_follows_after_until_has_more_is_false(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 250)
    assert db.execute("SELECT count(DISTINCT id) FROM job_checkpoints(?)", (job,)).fetchone() == (250,)
    newest_first = list(reversed(api.state.checkpoints[job]))
    assert [r.params for r in api.requests] == [
        {"limit": "100"},
        {"limit": "100", "after": newest_first[99]["id"]},
        {"limit": "100", "after": newest_first[199]["id"]},
    ]


def test_job_with_2500_checkpoints_costs_exactly_25_requests(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 2500)
    assert db.execute("SELECT count(*), count(DISTINCT id) FROM job_checkpoints(?)", (job,)).fetchone() == (2500, 2500)
    assert len(api.requests) == 25
    assert all(r.params["limit"] == "100" for r in api.requests)


def test_exactly_one_page_of_100_costs_one_request(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 100)
    assert db.execute("SELECT count(*) FROM job_checkpoints(?)", (job,)).fetchone() == (100,)
    assert len(api.requests) == 1


def test_empty_job_costs_one_request(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 0)
    assert db.execute("SELECT count(*) FROM job_checkpoints(?)", (job,)).fetchone() == (0,)
    assert len(api.requests) == 1


def test_limit_without_order_by_sends_one_request(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 2500)
    assert len(db.execute("SELECT * FROM job_checkpoints(?) LIMIT 5", (job,)).fetchall()) == 5
    assert len(api.requests) == 1


def test_limit_with_order_by_reads_every_page(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 250)
    rows = db.execute("SELECT step_number FROM job_checkpoints(?) ORDER BY step_number LIMIT 2", (job,)).fetchall()
    assert rows == [(1,), (2,)]
    assert len(api.requests) == 3


def test_rows_stop_early_but_stay_lazy_across_pages(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 1000)
    cursor = db.execute("SELECT id FROM job_checkpoints(?)", (job,))
    first_150 = [next(cursor) for _ in range(150)]
    assert len(first_150) == 150
    assert len(api.requests) == 2  # the second page, and nothing more, was needed
    cursor.close()


def test_fine_tuning_jobs_pages_and_flattens(api: FakeOpenAI, db: apsw.Connection) -> None:
    for n in range(130):
        api.add_job(status="failed" if n % 10 == 0 else "succeeded", error=None)
    count, failed = db.execute("SELECT count(*), sum(status = 'failed') FROM fine_tuning_jobs").fetchone()
    assert (count, failed) == (130, 13)
    assert [r.params.get("limit") for r in api.requests] == ["100", "100"]
    job = next(iter(api.state.jobs.values()))
    row = db.execute(
        "SELECT model, typeof(created_at), json_extract(hyperparameters, '$.n_epochs'), json_type(result_files), "
        "error FROM fine_tuning_jobs WHERE id = ?",
        (job["id"],),
    ).fetchone()
    assert row == (job["model"], "integer", 3, "array", None)


# -- 6. keys are percent-encoded into the path -------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["../../models", "a/b", "ftjob-1?limit=1&after=x", "ftjob#frag", "o'brien", "100%25", "x\r\nX-Injected: 1", "ü ñ"],
)
def test_keys_reach_exactly_their_checkpoints_route(api: FakeOpenAI, db: apsw.Connection, key: str) -> None:
    api.add_job(id=key)
    api.add_checkpoints(key, 2)
    rows = db.execute("SELECT fine_tuning_job_id FROM job_checkpoints WHERE fine_tuning_job_id = ?", (key,)).fetchall()
    assert rows == [(key,), (key,)]
    [request] = api.requests
    assert (request.route, request.keys, request.params) == ("checkpoints", (key,), {"limit": "100"})
    assert "x-injected" not in request.headers


# -- 7. eponymous-only and read-only -----------------------------------------------------------------


def test_nothing_is_written_into_the_database_file(api: FakeOpenAI, connect, tmp_path) -> None:
    path = tmp_path / "experiments.db"
    job = job_with(api, 3)
    db = connect(str(path))
    db.execute("CREATE TABLE mine(x)")
    db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    db.execute("SELECT * FROM fine_tuning_jobs").fetchall()
    db.close()
    with sqlite3.connect(path) as plain:
        assert plain.execute("SELECT type, name FROM sqlite_master").fetchall() == [("table", "mine")]


@pytest.mark.parametrize(
    ("table", "sql"),
    [
        ("job_checkpoints", "INSERT INTO job_checkpoints(id) VALUES ('x')"),
        ("job_checkpoints", "UPDATE job_checkpoints SET id = 'y' WHERE fine_tuning_job_id = 'ftjob-a'"),
        ("job_checkpoints", "DELETE FROM job_checkpoints WHERE fine_tuning_job_id = 'ftjob-a'"),
        ("models", "DELETE FROM models"),
    ],
)
def test_writes_fail_with_a_clear_message(api: FakeOpenAI, db: apsw.Connection, table: str, sql: str) -> None:
    with pytest.raises(apsw.SQLError, match=f"table {table} may not be modified"):
        db.execute(sql)
    assert api.requests == []


def test_create_virtual_table_is_refused(db: apsw.Connection) -> None:
    with pytest.raises(apsw.SQLError, match="no such module"):
        db.execute("CREATE VIRTUAL TABLE mine USING job_checkpoints")


def test_rowids_are_stable_across_queries(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 5)
    first = db.execute("SELECT rowid, id FROM job_checkpoints(?)", (job,)).fetchall()
    again = db.execute("SELECT rowid, id FROM job_checkpoints(?)", (job,)).fetchall()
    assert sorted(first) == sorted(again)
    assert len({rowid for rowid, _ in first}) == 5


def test_warnings_do_not_escape_as_errors_by_default(api: FakeOpenAI, db: apsw.Connection) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert db.execute("SELECT * FROM job_checkpoints('ftjob-none')").fetchall() == []
    assert [type(w.message) for w in caught] == [openai_vtab.UnknownKeyWarning]
