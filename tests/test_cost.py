"""What a query costs: the response cache, concurrent IN lists, the LIMIT hint and the openai_requests log.

These tests pin request counts and concurrency, never times (benchmarks/run.py measures those).
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable

import apsw
import pytest

import openai_vtab
from openai_vtab.cache import ResponseCache
from openai_vtab.testing import FakeOpenAI

Connect = Callable[..., apsw.Connection]


def job_with(api: FakeOpenAI, count: int) -> str:
    job = api.add_job()
    api.add_checkpoints(job["id"], count)
    return job["id"]


# -- cache --------------------------------------------------------------------------------------------


def test_duplicate_join_keys_cost_one_fetch_per_distinct_key(api: FakeOpenAI, db: apsw.Connection) -> None:
    a, b = job_with(api, 2), job_with(api, 3)
    db.execute("CREATE TABLE runs(job_id TEXT)")
    db.executemany("INSERT INTO runs VALUES (?)", [(a,), (b,), (a,), (a,), (b,), ("ftjob-gone",), ("ftjob-gone",)])
    with pytest.warns(openai_vtab.UnknownKeyWarning):
        count = db.execute("SELECT count(*) FROM runs r JOIN job_checkpoints c ON c.fine_tuning_job_id = r.job_id")
        assert count.fetchone() == (3 * 2 + 2 * 3,)
    assert sorted(r.keys[0] for r in api.requests) == sorted([a, b, "ftjob-gone"])


def test_rerunning_a_query_within_the_ttl_sends_nothing(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 250)
    sql = "SELECT count(*) FROM job_checkpoints(?)"
    assert db.execute(sql, (job,)).fetchone() == (250,)
    assert len(api.requests) == 3
    assert db.execute(sql, (job,)).fetchone() == (250,)
    assert len(api.requests) == 3
    assert db.execute("SELECT count(*), sum(cached) FROM openai_requests").fetchone() == (6, 3)


def test_cache_ttl_zero_turns_the_cache_off(api: FakeOpenAI, connect: Connect) -> None:
    job = job_with(api, 5)
    db = connect(cache_ttl=0)
    for _ in range(3):
        db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    assert len(api.requests) == 3


def test_cached_answers_expire_after_the_ttl(api: FakeOpenAI, connect: Connect) -> None:
    job = job_with(api, 5)
    db = connect(cache_ttl=0.2)
    db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    time.sleep(0.3)
    db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    assert len(api.requests) == 2


def test_cache_is_cleared_from_sql_and_from_python(api: FakeOpenAI, connect: Connect) -> None:
    job = job_with(api, 5)
    db = apsw.Connection(":memory:")
    registration = openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url)
    sql = "SELECT * FROM job_checkpoints(?)"
    db.execute(sql, (job,)).fetchall()
    assert db.execute("SELECT openai_clear_cache()").fetchone() == (1,)
    db.execute(sql, (job,)).fetchall()
    assert registration.clear_cache() == 1
    db.execute(sql, (job,)).fetchall()
    assert len(api.requests) == 3


def test_new_data_shows_once_the_cache_is_cleared(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 2)
    sql = "SELECT count(*) FROM job_checkpoints(?)"
    assert db.execute(sql, (job,)).fetchone() == (2,)
    api.add_checkpoints(job, 1)
    assert db.execute(sql, (job,)).fetchone() == (2,)  # within the TTL: the cached answer, by design
    db.execute("SELECT openai_clear_cache()")
    assert db.execute(sql, (job,)).fetchone() == (3,)


def test_registrations_with_different_credentials_never_share_rows(api: FakeOpenAI) -> None:
    job = job_with(api, 2)
    db = apsw.Connection(":memory:")
    openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url)
    db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    # Re-registering the same connection with another key must not be answered from the first one's cache.
    openai_vtab.register(db, api_key="sk-test-someone-else-entirely", base_url=api.base_url)
    with pytest.raises(openai_vtab.AuthenticationError):
        db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()


def test_cache_identity_separates_key_org_project_and_base_url() -> None:
    from openai_vtab.client import Client
    from openai_vtab.config import Config

    def identity(key: str = "sk-test-a", **options: object) -> tuple[object, ...]:
        base = {"api_key": key, "base_url": "http://127.0.0.1:1/v1", "environ": {}}
        config = Config.resolve(**{**base, **options})
        return Client(config)._identity(config.credential())

    variants = [
        identity(),
        identity("sk-test-b"),
        identity(organization="org-x"),
        identity(project="proj_x"),
        identity(base_url="http://127.0.0.1:2/v1"),
    ]
    assert len(set(variants)) == len(variants)
    assert all("sk-test-a" not in str(v) for v in variants)


def test_cache_memory_stays_under_its_byte_bound() -> None:
    cache = ResponseCache(ttl=60, max_bytes=10_000)
    for n in range(100):
        cache.put(("page", n), 200, b"x" * 1_000)
    entries, size = cache.size
    assert size <= 10_000 and entries == 10
    assert cache.get(("page", 99)) is not None and cache.get(("page", 0)) is None  # oldest evicted first


# -- concurrency --------------------------------------------------------------------------------------


def test_in_list_fetches_max_workers_keys_at_once(api: FakeOpenAI, connect: Connect) -> None:
    jobs = [job_with(api, 1) for _ in range(12)]
    api.latency = 0.4  # long enough for requests sent together to overlap, even beside three other test workers
    db = connect(max_workers=4)
    placeholders = ", ".join("?" * len(jobs))
    sql = f"SELECT count(*) FROM job_checkpoints WHERE fine_tuning_job_id IN ({placeholders})"
    assert db.execute(sql, jobs).fetchone() == (12,)
    assert api.max_in_flight == 4
    assert len(api.requests) == 12


def test_max_workers_one_fetches_one_at_a_time(api: FakeOpenAI, connect: Connect) -> None:
    jobs = [job_with(api, 1) for _ in range(4)]
    api.latency = 0.4  # long enough for requests sent together to overlap, even beside three other test workers
    db = connect(max_workers=1)
    db.execute("SELECT count(*) FROM job_checkpoints WHERE fine_tuning_job_id IN (?, ?, ?, ?)", jobs).fetchall()
    assert api.max_in_flight == 1


def test_multi_page_keys_in_an_in_list_are_complete(api: FakeOpenAI, db: apsw.Connection) -> None:
    jobs = [job_with(api, n) for n in (250, 0, 101, 7)]
    rows = db.execute(
        "SELECT fine_tuning_job_id, count(*) FROM job_checkpoints WHERE fine_tuning_job_id IN (?, ?, ?, ?) GROUP BY 1",
        jobs,
    ).fetchall()
    assert sorted(rows) == sorted([(jobs[0], 250), (jobs[2], 101), (jobs[3], 7)])
    assert len(api.requests) == 3 + 1 + 2 + 1


# -- less traffic, less memory ------------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "offset", "asked"), [(5, 0, "5"), (1, 0, "1"), (20, 30, "50"), (100, 0, "100")])
def test_a_small_limit_asks_the_api_for_that_many(
    api: FakeOpenAI, db: apsw.Connection, limit: int, offset: int, asked: str
) -> None:
    job = job_with(api, 300)
    rows = db.execute(f"SELECT id FROM job_checkpoints(?) LIMIT {limit} OFFSET {offset}", (job,)).fetchall()
    assert len(rows) == limit
    assert [r.params for r in api.requests] == [{"limit": asked}]


def test_a_limit_with_order_by_is_not_pushed_down(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 50)
    db.execute("SELECT id FROM job_checkpoints(?) ORDER BY step_number LIMIT 5", (job,)).fetchall()
    assert [r.params for r in api.requests] == [{"limit": "100"}]


def test_a_limit_behind_a_filter_sqlite_applies_is_not_pushed_down(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 300)
    # Only every 10th row passes the filter: a first page of 5 would be the wrong size.
    rows = db.execute("SELECT id FROM job_checkpoints(?) WHERE step_number % 10 = 0 LIMIT 5", (job,)).fetchall()
    assert len(rows) == 5
    assert [r.params for r in api.requests] == [{"limit": "100"}]


def test_scanning_a_big_job_keeps_memory_to_about_a_page(api: FakeOpenAI, connect: Connect) -> None:
    job = job_with(api, 10_000)
    db = connect(cache_ttl=0)
    tracemalloc.start()
    try:
        count = 0
        for _ in db.execute("SELECT id, metrics FROM job_checkpoints(?)", (job,)):
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    # Measured: about 0.8 MB streaming (the in-process fake's own work included); holding all 10,000 rows
    # takes about 3.7 MB.
    assert peak < 2_000_000


# -- openai_requests ----------------------------------------------------------------------------------


def test_openai_requests_lists_what_a_query_cost(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 150)
    db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    rows = db.execute(
        "SELECT method, path, query, status, rows, attempts, cached, error, typeof(ms), typeof(at) "
        "FROM openai_requests ORDER BY seq"
    ).fetchall()
    after = api.requests[1].params["after"]
    path = f"/fine_tuning/jobs/{job}/checkpoints"
    assert rows == [
        ("GET", path, "limit=100", 200, 100, 1, 0, None, "real", "real"),
        ("GET", path, f"limit=100&after={after}", 200, 50, 1, 0, None, "real", "real"),
    ]
    assert db.execute("SELECT count(*), sum(ms) > 0 FROM openai_requests").fetchone() == (2, 1)


def test_openai_requests_records_failures(api: FakeOpenAI, connect: Connect) -> None:
    db = connect(max_retries=0)
    api.fail(500)
    with pytest.raises(openai_vtab.InternalServerError):
        db.execute("SELECT * FROM fine_tuning_jobs").fetchall()
    [(status, error)] = db.execute("SELECT status, error FROM openai_requests").fetchall()
    assert status == 500 and error.startswith("fine_tuning_jobs: GET /fine_tuning/jobs failed with HTTP 500")


def test_delete_from_openai_requests_empties_it(api: FakeOpenAI, db: apsw.Connection) -> None:
    db.execute("SELECT * FROM fine_tuning_jobs").fetchall()
    db.execute("DELETE FROM openai_requests")
    assert db.execute("SELECT count(*) FROM openai_requests").fetchone() == (0,)
    with pytest.raises(apsw.ReadOnlyError, match="only SELECT and DELETE"):
        db.execute("INSERT INTO openai_requests(path) VALUES ('x')")


def test_openai_requests_keeps_a_bounded_number_of_entries(api: FakeOpenAI, connect: Connect) -> None:
    db = connect(cache_ttl=0)
    api.add_job()
    for _ in range(1_050):
        db.execute("SELECT id FROM fine_tuning_jobs").fetchall()
    first, count = db.execute("SELECT min(seq), count(*) FROM openai_requests").fetchone()
    assert (first, count) == (51, 1_000)


def test_openai_requests_is_per_connection(api: FakeOpenAI, connect: Connect) -> None:
    one, two = connect(), connect()
    one.execute("SELECT * FROM fine_tuning_jobs").fetchall()
    assert two.execute("SELECT count(*) FROM openai_requests").fetchone() == (0,)


@pytest.mark.parametrize("index", ["", "PRIMARY KEY"], ids=["plain-local-table", "indexed-local-table"])
def test_in_then_join_fetches_every_key_once_and_concurrently(api: FakeOpenAI, connect: Connect, index: str) -> None:
    jobs = [job_with(api, 2) for _ in range(6)]
    db = connect(cache_ttl=0)
    db.execute(f"CREATE TABLE mine(job_id TEXT {index}, note TEXT)")
    db.executemany("INSERT INTO mine VALUES (?, ?)", [(j, f"note {n}") for n, j in enumerate(jobs)])
    api.latency = 0.4  # long enough for requests sent together to overlap, even beside three other test workers
    rows = db.execute(
        "SELECT m.note, c.step_number FROM mine m JOIN job_checkpoints c ON c.fine_tuning_job_id = m.job_id "
        "WHERE c.fine_tuning_job_id IN (SELECT job_id FROM mine)"
    ).fetchall()
    assert len(rows) == 12
    assert sorted(r.keys[0] for r in api.requests) == sorted(jobs)  # once each, not once per outer row
    assert api.max_in_flight == 6


def test_a_join_and_an_in_list_on_the_key_never_refetch_the_set_per_row(api: FakeOpenAI, connect: Connect) -> None:
    # Whichever order SQLite picks for two API tables, a key constrained by both = and IN takes the =.
    jobs = [job_with(api, 2) for _ in range(5)]
    db = connect(cache_ttl=0)
    rows = db.execute(
        "SELECT j.id, c.step_number FROM fine_tuning_jobs j JOIN job_checkpoints c ON c.fine_tuning_job_id = j.id "
        "WHERE c.fine_tuning_job_id IN (SELECT id FROM fine_tuning_jobs)"
    ).fetchall()
    assert len(rows) == 10
    assert sorted(r.keys[0] for r in api.requests_to("checkpoints")) == sorted(jobs)


def test_materialized_jobs_let_two_api_tables_join_concurrently(api: FakeOpenAI, connect: Connect) -> None:
    jobs = [job_with(api, 2) for _ in range(6)]
    db = connect(cache_ttl=0)
    api.latency = 0.4  # long enough for requests sent together to overlap, even beside three other test workers
    rows = db.execute(
        "WITH js AS MATERIALIZED (SELECT id, model FROM fine_tuning_jobs) "
        "SELECT j.model, c.step_number FROM job_checkpoints c JOIN js j ON j.id = c.fine_tuning_job_id "
        "WHERE c.fine_tuning_job_id IN (SELECT id FROM js)"
    ).fetchall()
    assert len(rows) == 12
    assert sorted(r.keys[0] for r in api.requests_to("checkpoints")) == sorted(jobs)
    assert api.max_in_flight == 6


def test_delete_with_a_where_clause_removes_just_those_rows(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 2)
    db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()  # answered by the cache
    db.execute("DELETE FROM openai_requests WHERE cached = 1")
    assert db.execute("SELECT seq, cached FROM openai_requests").fetchall() == [(1, 0)]
