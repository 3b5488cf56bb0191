"""Writes (opt-in): INSERT, UPDATE and DELETE send creates, cancels, pauses, resumes and deletes to the API.

Each test states the SQL and the requests it expects the fake to have received.
"""

from __future__ import annotations

import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import apsw
import pytest
import requests

import openai_vtab
from openai_vtab.testing import FakeOpenAI

Connect = Callable[..., apsw.Connection]
ADMIN = "sk-admin-test-000000000000"


def writes(api: FakeOpenAI) -> list[tuple[str, str]]:
    """(method, path) of every request but the GETs."""
    return [(r.method, r.path) for r in api.requests if r.method != "GET"]


@pytest.fixture
def wdb(connect: Connect) -> apsw.Connection:
    """A connection with writes allowed."""
    return connect(allow_writes=True)


def checkpoint(api: FakeOpenAI) -> str:
    job = api.add_job()
    return api.add_checkpoint(job["id"], 10, {"train_loss": 1.0})["fine_tuned_model_checkpoint"]


# -- off by default ------------------------------------------------------------------------------------


def test_every_write_is_refused_by_default_and_sends_nothing(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = api.add_job(status="running")
    ckpt = checkpoint(api)
    api.add_batch(status="in_progress")
    api.add_file("train.jsonl")
    statements = [
        "UPDATE fine_tuning_jobs SET status = 'cancelled'",
        f"INSERT INTO fine_tuning_jobs(model, training_file) VALUES ('gpt-4o-mini', '{job['training_file']}')",
        f"INSERT INTO checkpoint_permissions(fine_tuned_model_checkpoint, project_id) VALUES ('{ckpt}', 'proj_a')",
        f"DELETE FROM checkpoint_permissions WHERE fine_tuned_model_checkpoint = '{ckpt}' AND id = 'cp_x'",
        "UPDATE batches SET status = 'cancelled'",
        "DELETE FROM files",
        "DELETE FROM openai_files",
    ]
    api.clear()
    for sql in statements:
        with pytest.raises(openai_vtab.WriteRefusedError, match=r"writes to the OpenAI API are off.*allow_writes=True"):
            db.execute(sql)
    assert api.requests == []


def test_the_advice_to_allow_writes_covers_apsws_own_shell(api: FakeOpenAI, db: apsw.Connection) -> None:
    # There --allow-writes does not exist: the loader's register() line is what to change.
    api.add_job(status="running")
    with pytest.raises(openai_vtab.WriteRefusedError, match=r"on the register\(\) line of examples/load_openai_vtab"):
        db.execute("UPDATE fine_tuning_jobs SET status = 'cancelled'")


def test_a_table_without_writes_stays_read_only(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    with pytest.raises(apsw.SQLError, match="models may not be modified"):
        wdb.execute("DELETE FROM models")
    with pytest.raises(apsw.SQLError, match="models may not be modified"):
        wdb.execute("INSERT INTO models(id) VALUES ('x')")
    with pytest.raises(openai_vtab.WriteRefusedError, match=r"files takes no UPDATE.*it takes DELETE"):
        wdb.execute("UPDATE files SET status = 'x'")
    with pytest.raises(openai_vtab.WriteRefusedError, match=r"fine_tuning_jobs takes no DELETE.*UPDATE SET status"):
        wdb.execute("DELETE FROM fine_tuning_jobs")
    assert api.requests == []


# -- fine-tuning jobs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "status", "action"),
    [("running", "cancelled", "cancel"), ("running", "paused", "pause"), ("paused", "running", "resume")],
)
def test_update_status_sends_the_jobs_action(
    api: FakeOpenAI, wdb: apsw.Connection, before: str, status: str, action: str
) -> None:
    job = api.add_job(status=before)
    other = api.add_job(status="succeeded")
    api.clear()
    wdb.execute("UPDATE fine_tuning_jobs SET status = ? WHERE id = ?", (status, job["id"]))
    assert writes(api) == [("POST", f"/v1/fine_tuning/jobs/{job['id']}/{action}")]
    assert api.state.jobs[job["id"]]["status"] == status
    assert api.state.jobs[other["id"]]["status"] == "succeeded"
    # The cache answered the scan before; after the write it must not hide the change.
    assert wdb.execute("SELECT status FROM fine_tuning_jobs WHERE id = ?", (job["id"],)).fetchall() == [(status,)]


def test_update_of_another_column_is_refused_before_anything_is_sent(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    api.add_job(status="running")
    with pytest.raises(openai_vtab.WriteRefusedError, match=r"UPDATE of model refused.*only status can be set"):
        wdb.execute("UPDATE fine_tuning_jobs SET model = 'x', status = 'cancelled'")
    assert api.requests == []


def test_update_to_another_status_sends_no_write(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    job = api.add_job(status="running")
    with pytest.raises(openai_vtab.WriteRefusedError, match=r"status cannot be set to 'succeeded'.*'cancelled'"):
        wdb.execute("UPDATE fine_tuning_jobs SET status = 'succeeded'")
    assert writes(api) == []
    assert api.state.jobs[job["id"]]["status"] == "running"


@pytest.mark.parametrize("sql", ["SET model = 'x'", "SET model = 'x', status = 'cancelled'"])
def test_with_the_guard_replaced_an_update_of_another_column_still_sends_nothing(
    api: FakeOpenAI, wdb: apsw.Connection, sql: str
) -> None:
    # The guard is only the connection's authorizer: the user may replace it after register().
    job = api.add_job(status="paused")["id"]
    wdb.authorizer = None
    with pytest.raises(openai_vtab.WriteRefusedError, match=rf"UPDATE of {job} refused.*model cannot be changed"):
        wdb.execute(f"UPDATE fine_tuning_jobs {sql} WHERE id = ?", (job,))
    assert writes(api) == []
    assert api.state.jobs[job]["status"] == "paused"


def test_an_update_from_that_matches_a_job_twice_sends_one_call(api: FakeOpenAI) -> None:
    # SQLite calls the table once per match of the join; a plain table changes the row once, so must the API.
    db, lines = watched(api)
    twice, once = api.add_job(status="running")["id"], api.add_job(status="running")["id"]
    db.execute("CREATE TEMP TABLE t(id)")
    db.executemany("INSERT INTO t VALUES (?)", [(twice,), (twice,), (once,)])
    api.clear()
    db.execute("UPDATE fine_tuning_jobs SET status = 'paused' FROM t WHERE t.id = fine_tuning_jobs.id")
    assert sorted(writes(api)) == sorted(("POST", f"/v1/fine_tuning/jobs/{j}/pause") for j in (twice, once))
    assert sorted(lines) == sorted(f"fine_tuning_jobs: {j} set to paused (status now paused)" for j in (twice, once))


@pytest.mark.parametrize(
    "set_status", ["status", "CASE WHEN status = 'paused' THEN 'running' ELSE status END"], ids=["same", "case-else"]
)
def test_a_row_whose_status_would_not_change_sends_nothing(api: FakeOpenAI, set_status: str) -> None:
    db, lines = watched(api)
    running = api.add_job(status="running")["id"]
    paused = api.add_job(status="paused")["id"]
    api.add_job(status="validating_files")
    api.clear()
    db.execute(f"UPDATE fine_tuning_jobs SET status = {set_status}")
    resumed = [] if set_status == "status" else [paused]
    assert writes(api) == [("POST", f"/v1/fine_tuning/jobs/{j}/resume") for j in resumed]
    assert lines == [f"fine_tuning_jobs: {j} set to running (status now running)" for j in resumed]
    assert api.state.jobs[running]["status"] == "running"


def test_status_null_is_refused_as_null(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    api.add_job(status="running")
    with pytest.raises(openai_vtab.WriteRefusedError, match=r"status cannot be set to NULL;"):
        wdb.execute("UPDATE fine_tuning_jobs SET status = NULL")
    assert writes(api) == []


@pytest.mark.parametrize("verb", ["INSERT", "INSERT OR REPLACE"])
def test_an_insert_with_a_rowid_is_refused(api: FakeOpenAI, wdb: apsw.Connection, verb: str) -> None:
    train = api.add_file("train.jsonl")["id"]
    with pytest.raises(openai_vtab.WriteRefusedError, match=r"a rowid \(5\) cannot be given"):
        wdb.execute(f"{verb} INTO fine_tuning_jobs(rowid, model, training_file) VALUES (5, 'gpt-4o-mini', ?)", (train,))
    assert writes(api) == []


def test_insert_creates_a_job_with_json_columns_as_objects(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    train = api.add_file("train.jsonl")["id"]
    valid = api.add_file("valid.jsonl")["id"]
    wdb.execute(
        "INSERT INTO fine_tuning_jobs(model, training_file, validation_file, suffix, seed, method, metadata, "
        "hyperparameters, integrations) VALUES ('gpt-4o-mini', ?, ?, 'v2', 7, json_object('type', 'supervised'), "
        "json_object('team', 'search'), NULL, json_array())",
        (train, valid),
    )
    (request,) = [r for r in api.requests if r.method == "POST"]
    assert request.path == "/v1/fine_tuning/jobs"
    assert request.json() == {
        "model": "gpt-4o-mini",
        "training_file": train,
        "validation_file": valid,
        "suffix": "v2",
        "seed": 7,
        "method": {"type": "supervised"},
        "metadata": {"team": "search"},
        "integrations": [],
    }
    (new_id,) = [job_id for job_id, job in api.state.jobs.items() if job["training_file"] == train]
    assert wdb.execute("SELECT openai_last_insert_id()").fetchone() == (new_id,)
    assert wdb.execute("SELECT status, suffix FROM fine_tuning_jobs WHERE id = openai_last_insert_id()").fetchall() == [
        ("validating_files", "v2")
    ]


def test_insert_converts_integer_text_and_numbers_as_the_spec_types_them(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    train = api.add_file("train.jsonl")["id"]
    wdb.execute(
        "INSERT INTO fine_tuning_jobs(model, training_file, seed, suffix) VALUES ('gpt-4o-mini', ?, '7', 3)", (train,)
    )
    (create,) = [r for r in api.requests if r.method == "POST"]
    assert create.json() == {"model": "gpt-4o-mini", "training_file": train, "seed": 7, "suffix": "3"}


@pytest.mark.parametrize(
    ("column", "value", "wanted"),
    [
        ("seed", "'seven'", "seed must be an integer, not 'seven'"),
        ("seed", "7.5", "seed must be an integer, not 7.5"),
        ("metadata", "5", "metadata must be a JSON object, not 5"),
        ("metadata", """'"str"'""", """metadata must be a JSON object, not '"str"'"""),
        ("integrations", "json_object('type', 'wandb')", "integrations must be a JSON array"),
        ("suffix", "x'00'", "suffix must be text, not a blob of 1 bytes"),
    ],
)
def test_insert_refuses_a_value_the_spec_does_not_take(
    api: FakeOpenAI, wdb: apsw.Connection, column: str, value: str, wanted: str
) -> None:
    train = api.add_file("train.jsonl")["id"]
    with pytest.raises(openai_vtab.WriteRefusedError, match=re.escape(wanted)):
        wdb.execute(
            f"INSERT INTO fine_tuning_jobs(model, training_file, {column}) VALUES ('gpt-4o-mini', ?, {value})", (train,)
        )
    assert writes(api) == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("seed", "7", "Invalid type for 'seed': expected an integer, but got a string instead."),
        ("metadata", 5, "Invalid type for 'metadata': expected an object, but got an integer instead."),
        ("metadata", {"team": 1}, "Invalid type for 'metadata': its values must be strings."),
        ("integrations", {}, "Invalid type for 'integrations': expected an array, but got an object instead."),
    ],
)
def test_the_fake_refuses_a_create_body_that_breaks_the_spec(
    api: FakeOpenAI, field: str, value: object, message: str
) -> None:
    train = api.add_file("train.jsonl")["id"]
    answer = requests.post(
        f"{api.base_url}/fine_tuning/jobs",
        json={"model": "gpt-4o-mini", "training_file": train, field: value},
        headers={"Authorization": f"Bearer {api.api_key}"},
        timeout=10,
    )
    assert (answer.status_code, answer.json()["error"]["message"]) == (400, message)
    assert api.state.jobs == {}


def test_insert_select_creates_one_job_per_row(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    files = [api.add_file(f"train-{i}.jsonl")["id"] for i in range(3)]
    wdb.execute("CREATE TEMP TABLE my_plan(model, training_file, seed)")
    wdb.executemany("INSERT INTO my_plan VALUES ('gpt-4o-mini', ?, ?)", [(f, i) for i, f in enumerate(files)])
    wdb.execute(
        "INSERT INTO fine_tuning_jobs(model, training_file, seed) SELECT model, training_file, seed FROM my_plan"
    )
    sent = [r.json() for r in api.requests if r.method == "POST"]
    assert sorted((body["training_file"], body["seed"]) for body in sent) == sorted(zip(files, range(3), strict=True))
    assert sorted(job["training_file"] for job in api.state.jobs.values()) == sorted(files)


@pytest.mark.parametrize(
    ("columns", "values", "message"),
    [
        ("model, training_file, status", "'gpt-4o-mini', 'file-x', 'running'", "status cannot be given"),
        ("model", "'gpt-4o-mini'", "training_file must be given"),
        ("model, training_file, method", "'gpt-4o-mini', 'file-x', '{oops'", "method is not JSON"),
    ],
)
def test_a_wrong_insert_is_refused_before_anything_is_sent(
    api: FakeOpenAI, wdb: apsw.Connection, columns: str, values: str, message: str
) -> None:
    with pytest.raises(openai_vtab.WriteRefusedError, match=message):
        wdb.execute(f"INSERT INTO fine_tuning_jobs({columns}) VALUES ({values})")
    assert api.requests == []


def test_a_checkpoint_permissions_insert_refusal_names_every_column_it_takes(
    api: FakeOpenAI, wdb: apsw.Connection
) -> None:
    # fine_tuned_model_checkpoint goes into the path, not the body, but it is a column the INSERT takes.
    with pytest.raises(
        openai_vtab.WriteRefusedError,
        match=r"project_id must be given; an INSERT takes fine_tuned_model_checkpoint, project_id \(required: ",
    ):
        wdb.execute("INSERT INTO checkpoint_permissions(fine_tuned_model_checkpoint) VALUES ('ft:x')")
    assert api.requests == []


# -- safety: creates are never sent twice, partial failures say what happened ------------------------------


def test_a_create_that_fails_after_the_server_made_the_job_is_not_sent_again(
    api: FakeOpenAI, wdb: apsw.Connection
) -> None:
    train = api.add_file("train.jsonl")["id"]
    api.fail_after_write("jobs", 500, times=5)
    with pytest.raises(openai_vtab.InternalServerError) as caught:
        wdb.execute("INSERT INTO fine_tuning_jobs(model, training_file) VALUES ('gpt-4o-mini', ?)", (train,))
    message = str(caught.value)
    assert "POST /fine_tuning/jobs failed with HTTP 500" in message
    assert "may have been created anyway, and it was not sent again" in message
    assert "try again later" not in message  # the usual advice could create the job twice
    assert "SELECT id, status, training_file, created_at FROM fine_tuning_jobs" in message
    assert writes(api) == [("POST", "/v1/fine_tuning/jobs")]
    assert [job["training_file"] for job in api.state.jobs.values()] == [train]  # the job exists, once


def test_a_create_that_times_out_is_not_sent_again(api: FakeOpenAI, connect: Connect) -> None:
    train = api.add_file("train.jsonl")["id"]
    api.inject("hang", seconds=1, match="/fine_tuning/jobs", times=5)
    db = connect(allow_writes=True, timeout=0.3)
    with pytest.raises(openai_vtab.APITimeoutError, match=r"1 attempt.*may have been created anyway"):
        db.execute("INSERT INTO fine_tuning_jobs(model, training_file) VALUES ('gpt-4o-mini', ?)", (train,))
    assert writes(api) == [("POST", "/v1/fine_tuning/jobs")]


def test_a_create_whose_connection_broke_says_so_and_is_not_sent_again(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    train = api.add_file("train.jsonl")["id"]
    api.inject("disconnect", match="/fine_tuning/jobs")
    with pytest.raises(openai_vtab.APIConnectionError) as caught:
        wdb.execute("INSERT INTO fine_tuning_jobs(model, training_file) VALUES ('gpt-4o-mini', ?)", (train,))
    message = str(caught.value)
    assert "the connection to 127.0.0.1:" in message and "broke after the request was sent" in message
    assert "could not reach" not in message and "may have been created anyway" in message
    assert writes(api) == [("POST", "/v1/fine_tuning/jobs")]


def test_a_create_whose_answer_broke_off_is_not_sent_again(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    # The server made the job and its answer broke off half-way: sending the create again would make a second one.
    train = api.add_file("train.jsonl")["id"]
    api.inject("truncated", match="/fine_tuning/jobs", times=3)
    with pytest.raises(openai_vtab.APIConnectionError, match="may have been created anyway"):
        wdb.execute("INSERT INTO fine_tuning_jobs(model, training_file) VALUES ('gpt-4o-mini', ?)", (train,))
    assert writes(api) == [("POST", "/v1/fine_tuning/jobs")]
    assert len(api.state.jobs) == 1


def test_a_create_refused_with_429_is_not_sent_again(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    train = api.add_file("train.jsonl")["id"]
    api.fail(429, match="/fine_tuning/jobs", times=5)
    with pytest.raises(openai_vtab.RateLimitError) as caught:
        wdb.execute("INSERT INTO fine_tuning_jobs(model, training_file) VALUES ('gpt-4o-mini', ?)", (train,))
    assert "may have been created" not in str(caught.value)  # a 429 is the API saying no
    assert writes(api) == [("POST", "/v1/fine_tuning/jobs")]
    assert api.state.jobs == {}


def test_a_create_that_never_reached_the_server_is_retried(connect: Connect) -> None:
    with socket.socket() as probe:  # a port nothing listens on: every connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = connect(allow_writes=True, base_url=f"http://127.0.0.1:{port}/v1", max_retries=2)
    with pytest.raises(openai_vtab.APIConnectionError) as caught:
        db.execute("INSERT INTO fine_tuning_jobs(model, training_file) VALUES ('gpt-4o-mini', 'file-x')")
    assert "may have been created" not in str(caught.value)
    assert db.execute("SELECT method, path, attempts FROM openai_requests").fetchall() == [
        ("POST", "/fine_tuning/jobs", 3)
    ]


def test_a_cancel_is_retried_after_a_500(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    job = api.add_job(status="running")
    api.fail(500, match="/cancel")
    wdb.execute("UPDATE fine_tuning_jobs SET status = 'cancelled'")
    assert writes(api) == [("POST", f"/v1/fine_tuning/jobs/{job['id']}/cancel")] * 2
    assert api.state.jobs[job["id"]]["status"] == "cancelled"


def watched(api: FakeOpenAI) -> tuple[apsw.Connection, list[str]]:
    """A connection with writes allowed, and the change lines it reports."""
    db = apsw.Connection(":memory:")
    registration = openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url, allow_writes=True)
    lines: list[str] = []
    registration.on_change.append(lines.append)
    return db, lines


def test_a_cancel_whose_first_attempt_worked_counts_as_done(api: FakeOpenAI) -> None:
    # The first attempt cancels the job but answers 502; the retry is refused with 400 "already cancelled".
    db, lines = watched(api)
    jobs = [api.add_job(status="running")["id"] for _ in range(3)]
    api.fail_after_write("job_cancel", 502)
    db.execute("UPDATE fine_tuning_jobs SET status = 'cancelled'")
    assert [api.state.jobs[j]["status"] for j in jobs] == ["cancelled"] * 3
    assert len(writes(api)) == 4
    assert (
        sum(
            "by an earlier attempt of this call, whose answer was lost (status now cancelled)" in line for line in lines
        )
        == 1
    )
    assert len(lines) == 3


def test_a_batch_cancel_whose_first_attempt_worked_counts_as_done(api: FakeOpenAI) -> None:
    # A cancelled batch reads back as cancelling first: that is the status asked for, on its way.
    db, lines = watched(api)
    batch = api.add_batch(status="in_progress")["id"]
    api.fail_after_write("batch_cancel", 502)
    db.execute("UPDATE batches SET status = 'cancelled'")
    assert lines == [
        f"batches: {batch} set to cancelled by an earlier attempt of this call, whose answer was lost "
        "(status now cancelling)"
    ]
    assert ("GET", f"/v1/batches/{batch}") in [(r.method, r.path) for r in api.requests]


def test_a_delete_whose_first_attempt_worked_counts_as_done(api: FakeOpenAI) -> None:
    db, lines = watched(api)
    files = [api.add_file(f"old{i}.jsonl")["id"] for i in range(2)]
    api.fail_after_write("file", 500)
    db.execute("DELETE FROM files")
    assert api.state.files == []
    assert len(lines) == 2 and any(
        line.endswith("deleted by an earlier attempt of this call, whose answer was lost") for line in lines
    )
    assert {line.split()[1] for line in lines} == set(files)


def test_a_retry_refused_for_its_own_reason_says_an_earlier_attempt_may_have_worked(
    api: FakeOpenAI, wdb: apsw.Connection
) -> None:
    # The 502 came before anything changed; the job read back is still succeeded, so the 400 is a real failure.
    job = api.add_job(status="succeeded")["id"]
    api.fail(502, match="/cancel")
    with pytest.raises(openai_vtab.BadRequestError) as caught:
        wdb.execute("UPDATE fine_tuning_jobs SET status = 'cancelled'")
    assert "an earlier attempt of this call reached the server without a clear answer and may have worked" in str(
        caught.value
    )
    assert f"SELECT * FROM fine_tuning_jobs WHERE id = '{job}'" in str(caught.value)
    assert api.state.jobs[job]["status"] == "succeeded"


def test_a_404_on_a_first_delete_attempt_is_still_an_error(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    api.add_file("old.jsonl")
    api.fail(404, match="/files/file-")
    with pytest.raises(openai_vtab.NotFoundError) as caught:
        wdb.execute("DELETE FROM files")
    assert "earlier attempt" not in str(caught.value)


def test_a_multi_row_update_that_fails_half_way_names_what_changed(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    for _ in range(3):
        api.add_job(status="running")
    order = [row[0] for row in wdb.execute("SELECT id FROM fine_tuning_jobs")]
    first, failing, last = order
    api.fail(400, match=f"/{failing}/cancel")
    with pytest.raises(openai_vtab.PartialWriteError) as caught:
        wdb.execute("UPDATE fine_tuning_jobs SET status = 'cancelled' WHERE status = 'running'")
    error = caught.value
    assert error.changed == [first]
    assert error.unchanged == [failing, last]
    assert (error.failed_row, error.outcome_unknown) == (None, False)
    assert isinstance(error.error, openai_vtab.BadRequestError)
    message = str(error)
    assert f"changed: {first}; not changed: {failing}, {last}" in message
    assert "nothing was rolled back" in message and "HTTP 400" in message
    assert [api.state.jobs[i]["status"] for i in order] == ["cancelled", "running", "running"]
    assert writes(api) == [("POST", f"/v1/fine_tuning/jobs/{i}/cancel") for i in (first, failing)]


def test_a_half_way_failure_inside_begin_names_only_its_own_statements_ids(
    api: FakeOpenAI, wdb: apsw.Connection
) -> None:
    # SQLite begins the table's transaction once for BEGIN ... COMMIT: an earlier statement's ids are not this one's,
    # and rows the transaction read before cannot be told from this statement's, so only the failing id is named.
    for _ in range(4):
        api.add_job(status="running")
    earlier, first, failing, last = [row[0] for row in wdb.execute("SELECT id FROM fine_tuning_jobs")]
    api.fail(400, match=f"/{failing}/cancel")
    wdb.execute("BEGIN")
    wdb.execute("UPDATE fine_tuning_jobs SET status = 'cancelled' WHERE id = ?", (earlier,))
    with pytest.raises(openai_vtab.PartialWriteError) as caught:
        wdb.execute("UPDATE fine_tuning_jobs SET status = 'cancelled' WHERE id IN (?, ?, ?)", (first, failing, last))
    wdb.execute("COMMIT")
    assert caught.value.changed == [first]
    assert caught.value.unchanged == [failing]
    assert f"not changed: {failing} and any rows the statement matched after it." in str(caught.value)


def test_inside_begin_a_failed_statement_does_not_leak_into_the_next(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    # A failed statement moves no total_changes(): its ids must still not show up in the next statement's error.
    jobs = {g: [api.add_job(status=s)["id"] for s in ("running", "succeeded", "running")] for g in "ab"}
    wdb.execute("BEGIN")
    for group in "ab":
        with pytest.raises(openai_vtab.PartialWriteError) as caught:
            wdb.execute("UPDATE fine_tuning_jobs SET status = 'cancelled' WHERE id IN (?, ?, ?)", jobs[group])
        assert set(caught.value.changed) <= set(jobs[group]) and len(caught.value.changed) == 1
        assert caught.value.unchanged[0] == jobs[group][1]
        assert set(caught.value.unchanged) <= set(jobs[group])
    wdb.execute("COMMIT")


def test_inside_begin_rows_a_select_read_are_not_listed_as_not_changed(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    others = [api.add_job(status="succeeded")["id"] for _ in range(3)]
    paused = api.add_job(status="running")["id"]
    targets = [api.add_job(status=s)["id"] for s in ("running", "succeeded", "running")]
    wdb.execute("BEGIN")
    wdb.execute("UPDATE fine_tuning_jobs SET status = 'paused' WHERE id = ?", (paused,))
    assert len(wdb.execute("SELECT rowid, id FROM fine_tuning_jobs").fetchall()) == 7
    with pytest.raises(openai_vtab.PartialWriteError) as caught:
        wdb.execute("UPDATE fine_tuning_jobs SET status = 'cancelled' WHERE id IN (?, ?, ?)", targets)
    wdb.execute("COMMIT")
    assert not set(caught.value.unchanged) & {*others, paused}
    assert caught.value.unchanged[0] == targets[1]


def test_a_failure_on_the_first_row_is_the_apis_own_error(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    job = api.add_job(status="succeeded")
    with pytest.raises(openai_vtab.BadRequestError, match=f"POST /fine_tuning/jobs/{job['id']}/cancel failed"):
        wdb.execute("UPDATE fine_tuning_jobs SET status = 'cancelled'")


def test_an_insert_select_that_fails_half_way_names_the_jobs_created(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    train = api.add_file("train.jsonl")["id"]
    wdb.execute("CREATE TEMP TABLE my_plan(n, training_file)")
    wdb.executemany("INSERT INTO my_plan VALUES (?, ?)", [(1, train), (2, "file-missing"), (3, train)])
    with pytest.raises(openai_vtab.PartialWriteError) as caught:
        wdb.execute(
            "INSERT INTO fine_tuning_jobs(model, training_file) SELECT 'gpt-4o-mini', training_file FROM my_plan "
            "ORDER BY n"
        )
    error = caught.value
    # Rows that were not created have no ids: the lists hold ids only, and failed_row says where it stopped.
    assert (error.changed, error.unchanged, error.unknown) == (list(api.state.jobs), [], [])
    assert (error.failed_row, error.outcome_unknown) == (2, False)
    assert "created: " in str(error) and "not created: row 2 and any after it" in str(error)
    assert len(writes(api)) == 2


def test_a_row_whose_call_may_have_worked_is_listed_as_unknown_not_as_unchanged(
    api: FakeOpenAI, wdb: apsw.Connection
) -> None:
    # Jobs are listed newest first: the running one is cancelled, then the succeeded one's cancel gets a 502 and
    # its retry a 400, with the job read back unchanged: whether the 502 attempt did anything is unknown.
    older = api.add_job(status="running")["id"]
    unknown = api.add_job(status="succeeded")["id"]
    newer = api.add_job(status="running")["id"]
    api.fail(502, match=f"/{unknown}/cancel")
    with pytest.raises(openai_vtab.PartialWriteError) as caught:
        wdb.execute("UPDATE fine_tuning_jobs SET status = 'cancelled'")
    assert (caught.value.changed, caught.value.unknown, caught.value.unchanged) == ([newer], [unknown], [older])
    assert (caught.value.failed_row, caught.value.outcome_unknown) == (None, True)
    assert f"changed: {newer}; may have been changed: {unknown}; not changed: {older}." in str(caught.value)


def test_a_create_whose_outcome_is_unknown_is_listed_as_unknown_not_as_not_created(
    api: FakeOpenAI, wdb: apsw.Connection
) -> None:
    train = api.add_file("train.jsonl")["id"]
    wdb.execute("CREATE TEMP TABLE my_plan(n); INSERT INTO my_plan VALUES (1), (2), (3)")
    api.clear()
    api.fail(500, match="/fine_tuning/jobs", skip=1)
    with pytest.raises(openai_vtab.PartialWriteError) as caught:
        wdb.execute(
            "INSERT INTO fine_tuning_jobs(model, training_file) SELECT 'm', ? FROM my_plan ORDER BY n", (train,)
        )
    error = caught.value
    assert (error.changed, error.unknown, error.unchanged) == (list(api.state.jobs), [], [])
    assert (error.failed_row, error.outcome_unknown) == (2, True)
    assert "may have been created: row 2; not created: any rows after it." in str(caught.value)
    assert len(writes(api)) == 2


# -- triggers and views ------------------------------------------------------------------------------------


def test_a_trigger_cannot_write_and_a_view_still_reads(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    job = api.add_job(status="running")
    wdb.execute(
        "CREATE TABLE alarms(job_id); CREATE TRIGGER stop AFTER INSERT ON alarms BEGIN "
        "UPDATE fine_tuning_jobs SET status = 'cancelled' WHERE id = new.job_id; END; "
        "CREATE VIEW running AS SELECT id FROM fine_tuning_jobs WHERE status = 'running'"
    )
    with pytest.raises(openai_vtab.WriteRefusedError, match="inside the trigger or view 'stop' refused"):
        wdb.execute("INSERT INTO alarms VALUES (?)", (job["id"],))
    assert api.requests == []
    assert wdb.execute("SELECT id FROM running").fetchall() == [(job["id"],)]
    assert api.state.jobs[job["id"]]["status"] == "running"


def test_the_users_own_authorizer_is_still_asked(api: FakeOpenAI) -> None:
    db = apsw.Connection(":memory:")
    asked: list[int] = []

    def mine(op: int, *args: object) -> int:
        asked.append(op)
        return apsw.SQLITE_DENY if op == apsw.SQLITE_DROP_TABLE else apsw.SQLITE_OK

    db.authorizer = mine
    openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url, allow_writes=True)
    db.execute("CREATE TABLE t(x)")
    with pytest.raises(apsw.AuthError):
        db.execute("DROP TABLE t")
    assert apsw.SQLITE_CREATE_TABLE in asked


# -- checkpoint permissions, batches, files ---------------------------------------------------------------------


def test_checkpoint_permissions_insert_and_delete(api: FakeOpenAI, connect: Connect) -> None:
    fake = FakeOpenAI(admin_api_key=ADMIN).start()
    try:
        ckpt = checkpoint(fake)
        db = connect(allow_writes=True, base_url=fake.base_url, api_key=fake.api_key, admin_api_key=ADMIN)
        db.execute(
            "INSERT INTO checkpoint_permissions(fine_tuned_model_checkpoint, project_id) VALUES (?, 'proj_a')", (ckpt,)
        )
        (grant,) = [r for r in fake.requests if r.method == "POST"]
        assert grant.json() == {"project_ids": ["proj_a"]}
        assert grant.headers["authorization"] == f"Bearer {ADMIN}"
        (permission,) = fake.state.permissions[ckpt]
        assert db.execute("SELECT openai_last_insert_id()").fetchone() == (permission["id"],)
        db.execute(
            "DELETE FROM checkpoint_permissions WHERE fine_tuned_model_checkpoint = ? AND id = ?",
            (ckpt, permission["id"]),
        )
        assert writes(fake)[-1] == ("DELETE", f"/v1/fine_tuning/checkpoints/{ckpt}/permissions/{permission['id']}")
        assert fake.state.permissions[ckpt] == []
    finally:
        fake.stop()


def test_update_batches_cancels_them(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    batch = api.add_batch(status="in_progress")
    api.add_batch(status="completed")
    wdb.execute("UPDATE batches SET status = 'cancelled' WHERE status = 'in_progress'")
    assert writes(api) == [("POST", f"/v1/batches/{batch['id']}/cancel")]
    assert wdb.execute("SELECT id, status FROM batches WHERE id = ?", (batch["id"],)).fetchall() == [
        (batch["id"], "cancelling")
    ]


def test_delete_from_files_deletes_them(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    old = api.add_file("old.jsonl")
    keep = api.add_file("keep.jsonl")
    wdb.execute("DELETE FROM files WHERE filename = 'old.jsonl'")
    assert writes(api) == [("DELETE", f"/v1/files/{old['id']}")]
    assert [f["id"] for f in api.state.files] == [keep["id"]]


def test_writes_are_in_the_request_log_with_their_method(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    file = api.add_file("old.jsonl")
    wdb.execute("DELETE FROM files")
    assert wdb.execute("SELECT method, path, status FROM openai_requests").fetchall() == [
        ("GET", "/files", 200),
        ("DELETE", f"/files/{file['id']}", 200),
    ]


def test_the_key_never_appears_in_a_writes_error(api: FakeOpenAI, connect: Connect) -> None:
    secret = "sk-test-wrong-key-1234567890abcdef"
    db = connect(allow_writes=True, api_key=secret)
    with pytest.raises(openai_vtab.AuthenticationError) as caught:
        db.execute("INSERT INTO fine_tuning_jobs(model, training_file) VALUES ('gpt-4o-mini', 'file-x')")
    assert secret not in str(caught.value) and "sk-...cdef" in str(caught.value)
    assert secret not in str(db.execute("SELECT error FROM openai_requests").fetchall())


def test_each_changed_object_is_reported_once(api: FakeOpenAI, connect: Connect) -> None:
    db = apsw.Connection(":memory:")
    registration = openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url, allow_writes=True)
    lines: list[str] = []
    registration.on_change.append(lines.append)
    jobs = [api.add_job(status="running")["id"] for _ in range(2)]
    db.execute("UPDATE fine_tuning_jobs SET status = 'paused'")
    assert sorted(lines) == sorted(f"fine_tuning_jobs: {j} set to paused (status now paused)" for j in jobs)


# -- interrupted ---------------------------------------------------------------------------------------


@contextmanager
def interrupted_at_post(
    api: FakeOpenAI, number: int, interrupt: Callable[[], None], match: str = "/pause"
) -> Iterator[None]:
    """Call ``interrupt`` while the ``number``-th POST (to a path with ``match``, and no GET goes there) waits for
    its answer: the fake holds it for a second."""
    api.clear()
    api.inject("hang", match=match, skip=number - 1, seconds=1.0)

    def when_sent() -> None:
        while sum(r.method == "POST" for r in api.requests) < number:
            time.sleep(0.01)
        time.sleep(0.1)
        interrupt()

    watcher = threading.Thread(target=when_sent)
    watcher.start()
    try:
        yield
    finally:
        watcher.join()
        time.sleep(1.0)  # let the held answer go out before the fake stops


def ctrl_c() -> None:
    """What Ctrl-C does: SIGINT to the main thread, whose blocking read then raises KeyboardInterrupt."""
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


def posted(api: FakeOpenAI) -> list[str]:
    """The job ids the POSTs were for, in the order they were sent."""
    return [path.split("/")[-2] for method, path in writes(api) if method == "POST"]


def test_ctrl_c_during_an_update_says_what_may_have_worked_and_what_changed(api: FakeOpenAI) -> None:
    db, lines = watched(api)
    jobs = {api.add_job(status="running")["id"] for _ in range(3)}
    with interrupted_at_post(api, 2, ctrl_c), pytest.raises(KeyboardInterrupt) as caught:
        db.execute("UPDATE fine_tuning_jobs SET status = 'paused'")
    first, second = posted(api)
    (third,) = jobs - {first, second}
    summary = (
        f"fine_tuning_jobs: UPDATE interrupted at {second} after 1 fine-tuning job(s) were changed, and nothing "
        f"was rolled back (SQLite cannot undo API calls): changed: {first}; may have been changed: {second}; not "
        f"changed: {third}"
    )
    assert lines == [
        f"fine_tuning_jobs: {first} set to paused (status now paused)",
        f"fine_tuning_jobs: {second} may have been set to paused: interrupted while waiting for the API's answer, "
        f"and the call may have reached the server: check with SELECT * FROM fine_tuning_jobs WHERE id = '{second}'",
        summary,
    ]
    if sys.version_info >= (3, 11):
        assert caught.value.__notes__ == [summary]
    assert db.execute("SELECT path, status, error FROM openai_requests WHERE method = 'POST'").fetchall() == [
        (f"/fine_tuning/jobs/{first}/pause", 200, None),
        (
            f"/fine_tuning/jobs/{second}/pause",
            None,
            "interrupted while waiting for the answer: the call may have reached the server",
        ),
    ]


def test_ctrl_c_during_an_insert_leaves_no_stale_last_insert_id(api: FakeOpenAI) -> None:
    db, lines = watched(api)
    file = api.add_file("train.jsonl")["id"]
    db.execute("CREATE TEMP TABLE plan(seed); INSERT INTO plan VALUES (1), (2), (3)")
    with interrupted_at_post(api, 2, ctrl_c, "/fine_tuning/jobs"), pytest.raises(KeyboardInterrupt):
        db.execute("INSERT INTO fine_tuning_jobs(model, training_file, seed) SELECT 'm', ?, seed FROM plan", (file,))
    created = lines[0].removeprefix("fine_tuning_jobs: created ").split()[0]
    assert lines[1].startswith("fine_tuning_jobs: row 2 may have created a fine-tuning job: interrupted while")
    assert lines[2] == (
        "fine_tuning_jobs: INSERT interrupted at row 2 after 1 fine-tuning job(s) were created, and nothing was "
        f"rolled back (SQLite cannot undo API calls): created: {created}; may have been created: row 2; not "
        "created: any rows after it"
    )
    assert len(lines) == 3
    # The id of the job row 2 may have created is unknown: the one before it is not the last one created.
    assert db.execute("SELECT openai_last_insert_id()").fetchall() == [(None,)]


def test_connection_interrupt_during_an_update_sums_up_what_it_changed(api: FakeOpenAI) -> None:
    db, lines = watched(api)
    jobs = {api.add_job(status="running")["id"] for _ in range(3)}
    # SQLite notices the interrupt after the call on the wire returns, and stops before the next row.
    with interrupted_at_post(api, 2, db.interrupt), pytest.raises(apsw.InterruptError):
        db.execute("UPDATE fine_tuning_jobs SET status = 'paused'")
    first, second = posted(api)
    (third,) = jobs - {first, second}
    assert lines == [
        f"fine_tuning_jobs: {first} set to paused (status now paused)",
        f"fine_tuning_jobs: {second} set to paused (status now paused)",
        f"fine_tuning_jobs: UPDATE stopped before it finished after 2 fine-tuning job(s) were changed, and nothing "
        f"was rolled back (SQLite cannot undo API calls): changed: {first}, {second}; not changed: {third}",
    ]


def test_a_write_reads_the_api_as_it_is_now_not_as_the_cache_kept_it(api: FakeOpenAI, wdb: apsw.Connection) -> None:
    job = api.add_job(status="paused")["id"]
    assert wdb.execute("SELECT status FROM fine_tuning_jobs WHERE id = ?", (job,)).fetchall() == [("paused",)]
    api.state.jobs[job]["status"] = "running"  # resumed elsewhere: the cache still says paused
    wdb.execute("UPDATE fine_tuning_jobs SET status = 'paused' WHERE id = ?", (job,))
    assert writes(api) == [("POST", f"/v1/fine_tuning/jobs/{job}/pause")]
