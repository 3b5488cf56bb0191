"""job_metrics: a job's training curve, read from its result file (CSV) through the job; and models.shutdown_date.

Each test states the SQL and the traffic it expects: two requests per job (the job, then its file), none for a
job without a result file beyond the job itself.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import apsw
import pytest

import openai_vtab
from openai_vtab.demo import populate
from openai_vtab.testing import FakeOpenAI

COLUMNS = "step, train_loss, train_accuracy, valid_loss, valid_mean_token_accuracy, metrics, file_id"
LINES = [
    {"step": 1, "train_loss": 2.5, "train_accuracy": 0.5, "valid_loss": None, "valid_mean_token_accuracy": None},
    {"step": 2, "train_loss": 2, "train_accuracy": 0.55, "valid_loss": 2.25, "valid_mean_token_accuracy": 0.52},
    {"step": 3, "train_loss": 1.75, "train_accuracy": 0.6, "valid_loss": None, "valid_mean_token_accuracy": None},
]


def metrics_of(db: apsw.Connection, job: str) -> list[tuple[Any, ...]]:
    return db.execute(
        f"SELECT {COLUMNS} FROM job_metrics WHERE fine_tuning_job_id = ? ORDER BY step", (job,)
    ).fetchall()


@pytest.mark.parametrize("encoding", ["plain", "base64", "json"])
def test_every_encoding_of_the_result_file_gives_the_same_typed_rows(
    api: FakeOpenAI, db: apsw.Connection, encoding: str
) -> None:
    job = api.add_job()["id"]
    file = api.add_result_file(job, LINES, encoding=encoding)["id"]
    rows = metrics_of(db, job)
    assert [row[:5] for row in rows] == [
        (1, 2.5, 0.5, None, None),
        (2, 2.0, 0.55, 2.25, 0.52),
        (3, 1.75, 0.6, None, None),
    ]
    assert [type(v) for v in rows[1][:5]] == [int, float, float, float, float]  # "2" in the file is still REAL
    # Blank cells are left out of metrics; numbers stay numbers.
    assert [json.loads(row[5]) for row in rows] == [
        {"step": 1, "train_loss": 2.5, "train_accuracy": 0.5},
        {"step": 2, "train_loss": 2, "train_accuracy": 0.55, "valid_loss": 2.25, "valid_mean_token_accuracy": 0.52},
        {"step": 3, "train_loss": 1.75, "train_accuracy": 0.6},
    ]
    assert {row[6] for row in rows} == {file}
    assert [(r.route, r.keys) for r in api.requests] == [("job", (job,)), ("content", (file,))]


def test_columns_the_header_names_reach_metrics_whatever_they_are(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = api.add_job(method={"type": "reinforcement"})["id"]
    api.add_result_file(
        job,
        "step,train_loss,train_mean_reward,full_valid_mean_reward,note\n1,0.9,0.25,,warmup\n2,0.8,0.5,0.45,\n",
    )
    rows = db.execute("SELECT step, train_loss, valid_loss, metrics FROM job_metrics(?) ORDER BY step", (job,))
    assert [(s, t, v, json.loads(m)) for s, t, v, m in rows] == [
        (1, 0.9, None, {"step": 1, "train_loss": 0.9, "train_mean_reward": 0.25, "note": "warmup"}),
        (2, 0.8, None, {"step": 2, "train_loss": 0.8, "train_mean_reward": 0.5, "full_valid_mean_reward": 0.45}),
    ]
    reward = "SELECT json_extract(metrics, '$.train_mean_reward') FROM job_metrics(?) WHERE step = 2"
    assert db.execute(reward, (job,)).fetchall() == [(0.5,)]


@pytest.mark.parametrize("text", ["step,train_loss\n", "", "\n\n"], ids=["header only", "empty", "blank lines"])
def test_an_empty_result_file_has_no_rows(api: FakeOpenAI, db: apsw.Connection, text: str) -> None:
    job = api.add_job()["id"]
    api.add_result_file(job, text)
    assert metrics_of(db, job) == []
    assert len(api.requests) == 2


@pytest.mark.parametrize("status", ["running", "failed", "cancelled", "queued"])
def test_a_job_without_a_result_file_has_no_rows_no_error_and_one_request(
    api: FakeOpenAI, db: apsw.Connection, status: str
) -> None:
    job = api.add_job(status=status)["id"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metrics_of(db, job) == []
    assert [r.route for r in api.requests] == ["job"]


def test_an_unknown_job_warns_and_has_no_rows(api: FakeOpenAI, db: apsw.Connection) -> None:
    with pytest.warns(openai_vtab.UnknownKeyWarning, match=r"job_metrics: no rows for unknown fine_tuning_job_id"):
        assert metrics_of(db, "ftjob-nope") == []
    assert [r.route for r in api.requests] == ["job"]


def test_a_result_file_that_is_gone_warns_naming_it_and_the_other_jobs_keep_their_rows(
    api: FakeOpenAI, db: apsw.Connection
) -> None:
    gone = api.add_job(result_files=["file-deleted"])["id"]
    kept = api.add_job()["id"]
    api.add_result_file(kept, LINES)
    sql = "SELECT fine_tuning_job_id, count(*) FROM job_metrics WHERE fine_tuning_job_id IN (?, ?) GROUP BY 1"
    with pytest.warns(openai_vtab.GoneWarning) as caught:
        assert db.execute(sql, (gone, kept)).fetchall() == [(kept, 3)]
    assert [str(w.message) for w in caught] == [
        f"job_metrics: no rows for fine_tuning_job_id={gone!r}: GET /files/file-deleted/content answered HTTP 404 "
        "(No such File object: file-deleted)"
    ]


def test_a_result_file_that_is_not_text_fails_clearly(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = api.add_job()["id"]
    file = api.add_result_file(job, "")["id"]
    api.state.contents[file] = b"\xff\xfe\x00binary"
    with pytest.raises(openai_vtab.APIResponseValidationError, match=r"job_metrics: GET /files/.* is not CSV"):
        metrics_of(db, job)


def test_an_in_list_fetches_jobs_concurrently_two_requests_each_and_a_rerun_none(
    connect: Any,
) -> None:
    with FakeOpenAI(latency=0.1) as api:
        jobs = [api.add_job()["id"] for _ in range(6)]
        for job in jobs[:4]:
            api.add_result_file(job, LINES)
        db = connect(api_key=api.api_key, base_url=api.base_url)
        sql = (
            "SELECT fine_tuning_job_id, count(*) FROM job_metrics "
            "WHERE fine_tuning_job_id IN (SELECT value FROM json_each(?)) GROUP BY 1"
        )
        counts = dict(db.execute(sql, (json.dumps(jobs),)).fetchall())
        assert counts == {job: 3 for job in jobs[:4]}
        assert sorted(r.route for r in api.requests) == ["content"] * 4 + ["job"] * 6
        assert api.max_in_flight > 1
        api.clear()
        assert dict(db.execute(sql, (json.dumps(jobs),)).fetchall()) == counts
        assert api.requests == []  # the cache answers both requests of every job


def test_rowids_are_unique_per_job_and_step_so_or_queries_do_not_lose_or_repeat_rows(
    api: FakeOpenAI, db: apsw.Connection
) -> None:
    jobs = [api.add_job()["id"] for _ in range(2)]
    for job in jobs:
        api.add_result_file(job, LINES)
    rows = db.execute(
        "SELECT rowid, fine_tuning_job_id, step FROM job_metrics WHERE fine_tuning_job_id IN (?, ?)", jobs
    ).fetchall()
    assert len({rowid for rowid, *_ in rows}) == len(rows) == 6
    either = db.execute(
        "SELECT count(*) FROM job_metrics WHERE fine_tuning_job_id = ? AND (step = 2 OR valid_loss IS NULL)",
        (jobs[0],),
    ).fetchone()
    assert either == (3,)


def test_the_demo_curves_agree_with_the_checkpoints_at_their_steps() -> None:
    """The demo's result files and checkpoints tell one story: the README's examples join them."""
    with FakeOpenAI() as api:
        populate(api)
        db = apsw.Connection(":memory:")
        openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url)
        disagreements = db.execute(
            """
            SELECT c.fine_tuning_job_id, c.step_number FROM job_checkpoints c
            JOIN job_metrics m ON m.fine_tuning_job_id = c.fine_tuning_job_id AND m.step = c.step_number
            WHERE c.fine_tuning_job_id IN (SELECT id FROM fine_tuning_jobs WHERE status = 'succeeded')
              AND (m.train_loss IS NOT c.train_loss OR m.valid_loss IS NOT c.valid_loss
                   OR json_extract(m.metrics, '$.full_valid_loss') IS NOT c.full_valid_loss)
            """
        ).fetchall()
        assert disagreements == []
        succeeded = db.execute("SELECT count(*) FROM fine_tuning_jobs WHERE status = 'succeeded'").fetchone()[0]
        with_curves = db.execute(
            "SELECT count(DISTINCT fine_tuning_job_id) FROM job_metrics "
            "WHERE fine_tuning_job_id IN (SELECT id FROM fine_tuning_jobs)"
        ).fetchone()[0]
        assert with_curves == succeeded > 0


def test_models_carry_their_shutdown_date_or_null(api: FakeOpenAI, db: apsw.Connection) -> None:
    api.add_model("gpt-old", owned_by="system", shutdown_date="2027-01-28")
    api.add_model("gpt-new", owned_by="system")
    rows = db.execute("SELECT id, shutdown_date FROM models ORDER BY id").fetchall()
    assert rows == [("gpt-new", None), ("gpt-old", "2027-01-28")]


def test_nan_and_inf_cells_are_missing_values_not_text(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = api.add_job()["id"]
    api.add_result_file(job, "step,train_loss,valid_loss\n1,nan,inf\n2,0.5,-inf\n")
    rows = db.execute("SELECT step, train_loss, valid_loss, metrics FROM job_metrics(?) ORDER BY step", (job,))
    assert [(s, t, v, json.loads(m)) for s, t, v, m in rows] == [
        (1, None, None, {"step": 1}),
        (2, 0.5, None, {"step": 2, "train_loss": 0.5}),
    ]
