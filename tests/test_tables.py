"""The tables beyond job_checkpoints, over real HTTP to the fake API, and checks every declared table must pass.

job_events, checkpoint_permissions (with its admin key), models, files and batches each get their rows, keys,
pushdowns and paging checked against the fake's data; the name-clash rule and the ``openai_`` aliases are
pinned; and every Table in ``openai_vtab.TABLES`` (future ones included) must parse, run its example and be
documented in the README. Each test states the SQL and the traffic it expects.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import apsw
import pytest

import openai_vtab
from openai_vtab import tables
from openai_vtab.demo import populate
from openai_vtab.tables import Column, Table
from openai_vtab.testing import FakeOpenAI, RecordedRequest
from openai_vtab.testing.usage import COUNTS

README = Path(__file__).resolve().parent.parent / "README.md"
ADMIN_KEY = "sk-admin-fake-1111111111111111"
WRONG_ADMIN_KEY = "sk-admin-wrong-2222222222222222"
EXAMPLE_JOB = "ftjob-abc123"  # the id the declarations' examples use


def open_db(api: FakeOpenAI, **options: Any) -> apsw.Connection:
    """A fresh connection (so a fresh response cache) registered against ``api``."""
    db = apsw.Connection(":memory:", statementcachesize=0)
    options.setdefault("api_key", api.api_key)
    options.setdefault("base_url", api.base_url)
    openai_vtab.register(db, **options)
    return db


def api_value(item: Mapping[str, Any], column: Column) -> Any:
    """The value the API object holds for ``column`` (following its dotted source), None when absent."""
    value: Any = item
    for part in column.path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def select_all(table: Table) -> str:
    """The declared columns of ``table``, quoted, for a SELECT list."""
    return ", ".join(f'"{c.name}"' for c in table.columns)


def decoded(table: Table, row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row of ``select_all(table)`` with its JSON columns parsed (they must be JSON text, or NULL)."""
    out = []
    for column, value in zip(table.columns, row, strict=True):
        if column.type == "JSON" and value is not None:
            assert isinstance(value, str), f"{table.name}.{column.name} is not JSON text: {value!r}"
            value = json.loads(value)
        out.append(value)
    return tuple(out)


def expected(table: Table, items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What ``decoded`` rows of ``items`` must be, from the fake's data."""
    return sorted((tuple(api_value(item, c) for c in table.columns) for item in items), key=repr)


def auth(request: RecordedRequest) -> str:
    return request.headers.get("authorization", "")


# -- job_events -----------------------------------------------------------------------------------------


def test_job_events_rows_have_every_column_and_data_as_json_text(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = api.add_job()["id"]
    api.add_event(job, "Validating training file")
    api.add_event(job, "Step 10/30: training loss=0.81", type="metrics", data={"step": 10, "train_loss": 0.81})
    api.add_event(job, "Validation file has few examples", level="warn", data={"examples": [1, 2]})
    other = api.add_job()["id"]
    api.add_event(other, "not this job's")
    rows = db.execute(
        f"SELECT {select_all(tables.job_events)}, fine_tuning_job_id, typeof(created_at), typeof(data) "
        "FROM job_events WHERE fine_tuning_job_id = ?",
        (job,),
    ).fetchall()
    assert sorted((decoded(tables.job_events, r[:-3]) for r in rows), key=repr) == expected(
        tables.job_events, api.state.events[job]
    )
    assert {r[-3:] for r in rows} == {(job, "integer", "text")}
    assert [(r.path, r.params) for r in api.requests] == [(f"/v1/fine_tuning/jobs/{job}/events", {"limit": "100"})]


@pytest.mark.parametrize(
    "where",
    ["", "WHERE fine_tuning_job_id LIKE 'ftjob-%'", "WHERE level = 'warn'"],
    ids=["no-constraint", "like", "other-column"],
)
def test_job_events_without_the_job_id_fails_naming_table_and_column(
    api: FakeOpenAI, db: apsw.Connection, where: str
) -> None:
    api.add_event(api.add_job()["id"], "x", level="warn")
    with pytest.raises(openai_vtab.MissingRequiredKeyError) as caught:
        db.execute(f"SELECT * FROM job_events {where}").fetchall()
    assert "job_events needs fine_tuning_job_id" in str(caught.value)
    assert "job_events('...')" in str(caught.value)
    assert api.requests == []


def test_job_events_in_list_fetches_each_job(api: FakeOpenAI, db: apsw.Connection) -> None:
    jobs = [api.add_job()["id"] for _ in range(3)]
    for n, job in enumerate(jobs):
        for i in range(n + 1):
            api.add_event(job, f"event {i}")
    rows = db.execute(
        "SELECT fine_tuning_job_id, count(*) FROM job_events WHERE fine_tuning_job_id IN (?, ?) GROUP BY 1",
        jobs[:2],
    ).fetchall()
    assert sorted(rows) == sorted((job, len(api.state.events[job])) for job in jobs[:2])
    assert sorted(r.path for r in api.requests) == sorted(f"/v1/fine_tuning/jobs/{j}/events" for j in jobs[:2])


def test_job_events_of_an_unknown_job_warn_and_give_no_rows(api: FakeOpenAI, db: apsw.Connection) -> None:
    with pytest.warns(openai_vtab.UnknownKeyWarning, match=r"job_events: .*fine_tuning_job_id='ftjob-nope'"):
        rows = db.execute("SELECT * FROM job_events('ftjob-nope')").fetchall()
    assert rows == []
    assert [r.route for r in api.requests] == ["events"]


def test_job_events_page_past_100_with_after_the_last_id(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = api.add_job()["id"]
    for i in range(150):
        api.add_event(job, f"step {i}")
    rows = db.execute("SELECT id FROM job_events(?)", (job,)).fetchall()
    events = api.state.events[job]
    assert sorted(r[0] for r in rows) == sorted(e["id"] for e in events)
    newest_first = sorted(events, key=lambda e: e["created_at"], reverse=True)  # the API's order
    assert [r.params for r in api.requests] == [{"limit": "100"}, {"limit": "100", "after": newest_first[99]["id"]}]


# -- checkpoint_permissions -----------------------------------------------------------------------------


def shared_job(api: FakeOpenAI, checkpoints: int = 3, projects: tuple[str, ...] = ("proj_a", "proj_b")) -> str:
    """A job whose every checkpoint is shared with ``projects``; returns the job id."""
    job = api.add_job()["id"]
    for checkpoint in api.add_checkpoints(job, checkpoints):
        for project in projects:
            api.add_permission(checkpoint["fine_tuned_model_checkpoint"], project)
    return job


def permission_rows(api: FakeOpenAI, checkpoint: str, keep: Callable[[str], bool] = bool) -> list[tuple[Any, ...]]:
    return sorted(
        (p["id"], p["object"], p["created_at"], p["project_id"])
        for p in api.state.permissions.get(checkpoint, [])
        if keep(p["project_id"])
    )


def test_checkpoint_permissions_join_with_job_checkpoints(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = api.add_job()["id"]
    checkpoints = api.add_checkpoints(job, 3)
    api.add_permission(checkpoints[0]["fine_tuned_model_checkpoint"], "proj_a")
    api.add_permission(checkpoints[2]["fine_tuned_model_checkpoint"], "proj_a")
    api.add_permission(checkpoints[2]["fine_tuned_model_checkpoint"], "proj_b")
    shared_job(api)  # another job's checkpoints: never asked for
    rows = db.execute(
        "SELECT c.step_number, p.id, p.object, p.created_at, p.project_id, p.fine_tuned_model_checkpoint "
        "FROM job_checkpoints(?) c "
        "JOIN checkpoint_permissions p ON p.fine_tuned_model_checkpoint = c.fine_tuned_model_checkpoint",
        (job,),
    ).fetchall()
    assert sorted(rows) == sorted(
        (c["step_number"], *p, c["fine_tuned_model_checkpoint"])
        for c in checkpoints
        for p in permission_rows(api, c["fine_tuned_model_checkpoint"])
    )
    # One request per checkpoint of this job, the ft:... name percent-encoded into the path.
    asked = api.requests_to("permissions")
    assert sorted(r.keys[0] for r in asked) == sorted(c["fine_tuned_model_checkpoint"] for c in checkpoints)
    assert all(":" not in r.raw_path for r in asked)


def test_checkpoint_permissions_without_the_checkpoint_fails_before_any_request(
    api: FakeOpenAI, db: apsw.Connection
) -> None:
    shared_job(api)
    with pytest.raises(openai_vtab.MissingRequiredKeyError) as caught:
        db.execute("SELECT * FROM checkpoint_permissions WHERE project_id = 'proj_a'").fetchall()
    assert "checkpoint_permissions needs fine_tuned_model_checkpoint" in str(caught.value)
    assert api.requests == []


@pytest.mark.parametrize(
    ("where", "args", "keep", "sent"),
    [
        ("project_id = 'proj_b'", (), lambda p: p == "proj_b", [{"project_id": "proj_b", "limit": "100"}]),
        ("project_id = ?", ("proj_a",), lambda p: p == "proj_a", [{"project_id": "proj_a", "limit": "100"}]),
        ("project_id LIKE 'proj_b%'", (), lambda p: p.startswith("proj_b"), [{"limit": "100"}]),
        ("project_id != 'proj_a'", (), lambda p: p != "proj_a", [{"limit": "100"}]),
        ("project_id > 'proj_a'", (), lambda p: p > "proj_a", [{"limit": "100"}]),
        ("project_id = 'PROJ_B' COLLATE NOCASE", (), lambda p: p == "proj_b", [{"limit": "100"}]),
        # SQLite splits an IN on an optional column into one `=` scan per value: one request each.
        (
            "project_id IN ('proj_a', 'proj_c')",
            (),
            lambda p: p in ("proj_a", "proj_c"),
            [{"project_id": "proj_a", "limit": "100"}, {"project_id": "proj_c", "limit": "100"}],
        ),
        ("project_id = ?", (None,), lambda p: False, []),  # = NULL is never true: nothing to ask
    ],
    ids=["eq", "eq-bound", "like", "not-equal", "range", "nocase", "in", "eq-null"],
)
def test_checkpoint_permissions_project_id_is_sent_only_for_equality(
    api: FakeOpenAI,
    db: apsw.Connection,
    where: str,
    args: tuple[Any, ...],
    keep: Callable[[str], bool],
    sent: list[dict[str, str]],
) -> None:
    job = shared_job(api, 1, ("proj_a", "proj_b", "proj_b2", "proj_c"))
    checkpoint = api.state.checkpoints[job][0]["fine_tuned_model_checkpoint"]
    api.clear()
    rows = db.execute(
        f"SELECT id, object, created_at, project_id FROM checkpoint_permissions(?) WHERE {where}", (checkpoint, *args)
    ).fetchall()
    assert sorted(rows) == permission_rows(api, checkpoint, keep)
    assert sorted((r.params for r in api.requests), key=repr) == sorted(sent, key=repr)


@pytest.fixture
def admin_api() -> Iterator[FakeOpenAI]:
    """A fake whose admin route (checkpoint permissions) accepts only ADMIN_KEY, the others only the normal key."""
    with FakeOpenAI(admin_api_key=ADMIN_KEY) as fake:
        yield fake


JOIN_PERMISSIONS = (
    "SELECT c.step_number, p.project_id FROM job_checkpoints(?) c "
    "JOIN checkpoint_permissions p ON p.fine_tuned_model_checkpoint = c.fine_tuned_model_checkpoint"
)


@pytest.mark.parametrize(
    "how",
    ["option", "environment"],
)
def test_permissions_carry_the_admin_key_and_job_requests_the_normal_one(
    admin_api: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    job = shared_job(admin_api, 2)
    admin_api.add_event(job, "done")
    if how == "environment":
        monkeypatch.setenv("OPENAI_ADMIN_KEY", ADMIN_KEY)
        db = open_db(admin_api)
    else:
        db = open_db(admin_api, admin_api_key=ADMIN_KEY)
    rows = db.execute(JOIN_PERMISSIONS, (job,)).fetchall()
    assert db.execute("SELECT count(*) FROM job_events(?)", (job,)).fetchone() == (1,)
    assert sorted(rows) == sorted(
        (c["step_number"], p[3])
        for c in admin_api.state.checkpoints[job]
        for p in permission_rows(admin_api, c["fine_tuned_model_checkpoint"])
    )
    keys = {(r.route, auth(r)) for r in admin_api.requests}
    assert keys == {
        ("checkpoints", f"Bearer {admin_api.api_key}"),
        ("events", f"Bearer {admin_api.api_key}"),
        ("permissions", f"Bearer {ADMIN_KEY}"),
    }


def test_without_an_admin_key_permissions_use_the_normal_key(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = shared_job(api, 2)
    assert len(db.execute(JOIN_PERMISSIONS, (job,)).fetchall()) == 4
    assert {auth(r) for r in api.requests_to("permissions")} == {f"Bearer {api.api_key}"}


def test_a_401_without_an_admin_key_says_where_admin_keys_go(admin_api: FakeOpenAI) -> None:
    job = shared_job(admin_api, 1)
    db = open_db(admin_api)
    with pytest.raises(openai_vtab.AuthenticationError) as caught:
        db.execute(JOIN_PERMISSIONS, (job,)).fetchall()
    message = str(caught.value)
    assert "checkpoint_permissions" in message and "HTTP 401" in message
    assert "admin endpoints use OPENAI_ADMIN_KEY or register(admin_api_key=...)" in message
    assert admin_api.api_key not in message  # the fake echoes the rejected key; it must be masked
    assert {(r.route, auth(r)) for r in admin_api.requests} == {
        ("checkpoints", f"Bearer {admin_api.api_key}"),
        ("permissions", f"Bearer {admin_api.api_key}"),
    }


@pytest.mark.parametrize("failure", ["wrong-admin-key", "forbidden"])
def test_the_admin_key_never_appears_in_any_message(
    admin_api: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    job = shared_job(admin_api, 1)
    sent = WRONG_ADMIN_KEY if failure == "wrong-admin-key" else ADMIN_KEY
    if failure == "forbidden":
        admin_api.fail(403, match="/permissions")
    monkeypatch.setenv("OPENAI_ADMIN_KEY", sent)
    db = apsw.Connection(":memory:", statementcachesize=0)
    registration = openai_vtab.register(db, api_key=admin_api.api_key, base_url=admin_api.base_url)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(openai_vtab.APIStatusError) as error:
            db.execute(JOIN_PERMISSIONS, (job,)).fetchall()
    assert error.value.status_code == (401 if failure == "wrong-admin-key" else 403)
    assert "OPENAI_ADMIN_KEY" in str(error.value)  # says which key was used...
    assert [auth(r) for r in admin_api.requests_to("permissions")] == [f"Bearer {sent}"]
    texts = [
        str(error.value),
        repr(error.value),
        *(str(w.message) for w in caught),
        repr(db.execute("SELECT * FROM openai_requests").fetchall()),
        repr(registration.config),
        repr(registration.config.describe()),
    ]
    assert [t for t in texts if sent in t or ADMIN_KEY in t] == []  # ...but never the key itself


# -- models ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", ["SELECT {cols} FROM models", "SELECT {cols} FROM models LIMIT 1000"])
def test_models_come_in_one_unpaged_request(api: FakeOpenAI, db: apsw.Connection, sql: str) -> None:
    for i in range(120):  # more than any page size: still one request
        api.add_model(f"gpt-fake-{i}", owned_by="system" if i % 2 else "openai")
    api.add_model("ft:gpt-4o-mini-2024-07-18:org::abc123", owned_by="org-fake")
    rows = db.execute(sql.format(cols=select_all(tables.models))).fetchall()
    assert sorted(rows, key=repr) == expected(tables.models, api.state.models)
    assert [(r.path, r.params) for r in api.requests] == [("/v1/models", {})]


# -- files ----------------------------------------------------------------------------------------------


@pytest.fixture
def some_files(api: FakeOpenAI) -> list[dict[str, Any]]:
    api.add_file("train.jsonl", bytes=52_000)
    api.add_file("valid.jsonl", expires_at=1_800_000_000)
    api.add_file("input.jsonl", purpose="batch")
    api.add_file("output.jsonl", purpose="batch_output")
    api.add_file("bad.jsonl", status="error", status_details="Line 3 is not JSON")
    api.add_file("notes.pdf", purpose="assistants")
    return api.state.files


def test_files_rows_and_page_size(api: FakeOpenAI, db: apsw.Connection, some_files: list[dict[str, Any]]) -> None:
    rows = db.execute(f"SELECT {select_all(tables.files)} FROM files").fetchall()
    assert sorted(rows, key=repr) == expected(tables.files, some_files)
    assert [(r.path, r.params) for r in api.requests] == [("/v1/files", {"limit": str(tables.files.page_size)})]
    assert tables.files.page_size == 10_000  # the endpoint's maximum, as the spec declares it


@pytest.mark.parametrize(
    ("where", "keep", "purposes"),
    [
        ("purpose = 'batch'", lambda p: p == "batch", ["batch"]),
        ("purpose != 'batch'", lambda p: p != "batch", [None]),
        ("purpose LIKE 'batch%'", lambda p: p.startswith("batch"), [None]),
        ("purpose = 'BATCH' COLLATE NOCASE", lambda p: p == "batch", [None]),
        ("purpose IN ('batch', 'assistants')", lambda p: p in ("batch", "assistants"), ["assistants", "batch"]),
        ("purpose = 'batch' OR purpose = 'fine-tune'", lambda p: p in ("batch", "fine-tune"), ["batch", "fine-tune"]),
    ],
    ids=["eq", "not-equal", "like", "nocase", "in", "or"],
)
def test_files_purpose_is_sent_only_for_equality(
    api: FakeOpenAI,
    db: apsw.Connection,
    some_files: list[dict[str, Any]],
    where: str,
    keep: Callable[[str], bool],
    purposes: list[str | None],
) -> None:
    rows = db.execute(f"SELECT id, filename, purpose FROM files WHERE {where}").fetchall()
    assert sorted(rows) == sorted((f["id"], f["filename"], f["purpose"]) for f in some_files if keep(f["purpose"]))
    assert sorted(r.params.get("purpose") or "" for r in api.requests) == sorted(p or "" for p in purposes)
    assert {r.params["limit"] for r in api.requests} == {"10000"}


# -- batches --------------------------------------------------------------------------------------------


def test_batches_json_columns_are_json_text_and_timestamps_integers(api: FakeOpenAI, db: apsw.Connection) -> None:
    api.add_batch(
        status="failed",
        errors={"object": "list", "data": [{"code": "invalid_json_line", "message": "bad", "line": 3, "param": None}]},
        completed_at=None,
        failed_at=1_730_000_999,
        output_file_id=None,
        request_counts={"total": 10, "completed": 0, "failed": 10},
        metadata={"experiment": "sql-v2", "owner": "ana"},
        usage={"input_tokens": 1200, "output_tokens": 30, "total_tokens": 1230},
        model="gpt-4o-mini",
    )
    api.add_batch(status="in_progress", finalizing_at=None, completed_at=None)
    api.add_batch()
    rows = db.execute(f"SELECT {select_all(tables.batches)} FROM batches").fetchall()
    assert sorted((decoded(tables.batches, r) for r in rows), key=repr) == expected(tables.batches, api.state.batches)
    types = f"SELECT {', '.join(f'typeof({c.name})' for c in tables.batches.columns)}, id FROM batches"
    by_id = {b["id"]: b for b in api.state.batches}
    for *kinds, ident in db.execute(types):
        for column, kind in zip(tables.batches.columns, kinds, strict=True):
            value = by_id[ident].get(column.name)
            wanted = "null" if value is None else {"INTEGER": "integer"}.get(column.type, "text")
            assert (column.name, kind) == (column.name, wanted)
    failed = next(b for b in api.state.batches if b["status"] == "failed")
    assert db.execute(
        "SELECT json_extract(request_counts, '$.failed'), json_extract(metadata, '$.owner'), "
        "json_extract(errors, '$.data[0].line') FROM batches WHERE id = ?",
        (failed["id"],),
    ).fetchone() == (
        failed["request_counts"]["failed"],
        failed["metadata"]["owner"],
        failed["errors"]["data"][0]["line"],
    )


# -- name clashes ---------------------------------------------------------------------------------------

MY_MODELS = [("my-model", "mine")]


@pytest.mark.parametrize(
    "create",
    [
        "CREATE TABLE models(id TEXT, owned_by TEXT); INSERT INTO models VALUES ('my-model', 'mine')",
        "CREATE VIEW models AS SELECT 'my-model' AS id, 'mine' AS owned_by",
        "CREATE TEMP TABLE models(id TEXT, owned_by TEXT); INSERT INTO models VALUES ('my-model', 'mine')",
    ],
    ids=["table", "view", "temp-table"],
)
def test_a_users_table_wins_and_register_warns(api: FakeOpenAI, create: str) -> None:
    model = api.add_model("gpt-4o-mini")
    db = apsw.Connection(":memory:", statementcachesize=0)
    db.execute(create)
    with pytest.warns(openai_vtab.TableNameClashWarning) as caught:
        openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert re.search(r"\bmodels\b", message) and "openai_models" in message
    assert db.execute("SELECT id, owned_by FROM models").fetchall() == MY_MODELS
    assert db.execute("SELECT id, owned_by FROM openai_models").fetchall() == [(model["id"], model["owned_by"])]


def test_a_users_table_created_after_register_also_wins_without_a_warning(api: FakeOpenAI) -> None:
    # Documented behaviour: register() can only warn about what exists when it runs; SQLite always prefers a
    # real table to an eponymous one, so a later table of the same name still hides ours (openai_ reaches it).
    model = api.add_model("gpt-4o-mini")
    db = apsw.Connection(":memory:", statementcachesize=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url)
    assert db.execute("SELECT id FROM models").fetchall() == [(model["id"],)]
    db.execute("CREATE TABLE models(id TEXT, owned_by TEXT); INSERT INTO models VALUES ('my-model', 'mine')")
    assert db.execute("SELECT id, owned_by FROM models").fetchall() == MY_MODELS
    assert db.execute("SELECT id, owned_by FROM openai_models").fetchall() == [(model["id"], model["owned_by"])]


def test_no_warning_without_a_clash(api: FakeOpenAI) -> None:
    db = apsw.Connection(":memory:")
    db.execute("CREATE TABLE my_models(id TEXT); CREATE VIEW openai_files_seen AS SELECT 1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url)


# -- every declared table -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> Iterator[FakeOpenAI]:
    """A fake holding what the declarations' examples name: job ftjob-abc123 with checkpoints, events,
    permissions and a result file, a fine-tuned model, fine-tune files, a batch still running, and a project
    with a member, a service account and its key, a rate limit, an invite and an audit log event."""
    with FakeOpenAI() as api:
        job = api.add_job(EXAMPLE_JOB)
        for checkpoint in api.add_checkpoints(job["id"], 3):
            api.add_permission(checkpoint["fine_tuned_model_checkpoint"], "proj_abc")
        api.add_result_file(job["id"], [{"step": step, "train_loss": 2.0 / step} for step in range(1, 4)])
        api.add_event(job["id"], "Fine-tuning job started")
        api.add_event(job["id"], "Training file has duplicate examples", level="warn")
        api.add_model("gpt-4o-mini-2024-07-18", owned_by="system", shutdown_date="2027-03-31")
        api.add_model(job["fine_tuned_model"], owned_by="org-fake")
        api.add_file("train.jsonl")
        api.add_file("input.jsonl", purpose="batch")
        api.add_batch()
        api.add_batch(status="in_progress", completed_at=None, finalizing_at=None)
        project = api.add_project("support-bot")
        user = api.add_user("mei@example.com", name="Mei", role="owner")
        api.add_project_user(project["id"], user["id"], role="owner")
        account = api.add_project_service_account(project["id"], "ci")
        key = api.add_project_api_key(project["id"], "ci-key", service_account_id=account["id"])
        api.add_project_rate_limit(project["id"], "gpt-4o-mini")
        api.add_invite("tomas@example.com")
        api.add_audit_log(
            "api_key.created", api.api_key_actor(key), project_id=project["id"], details={"id": key["id"]}
        )
        yesterday = int(api.clock()) - 86_400  # the examples read the last 30 days
        api.add_cost(yesterday, 1.25, project_id=project["id"], line_item="gpt-4o-mini, input", api_key_id=key["id"])
        group = {"project_id": project["id"], "api_key_id": key["id"], "model": "gpt-4o-mini"}
        for kind in COUNTS:
            counts = {count: 10 for count in COUNTS[kind]}
            api.add_usage(kind, yesterday, **counts, **group, size="1024x1024", vector_store_id="vs_abc")
        yield api


def key_values(api: FakeOpenAI, table: Table) -> tuple[str, ...]:
    """A key value with rows in ``sample`` for each of ``table``'s keys."""
    checkpoint = api.state.checkpoints[EXAMPLE_JOB][0]["fine_tuned_model_checkpoint"]
    project = api.state.organization.projects[0]["id"]
    known = {"fine_tuning_job_id": EXAMPLE_JOB, "fine_tuned_model_checkpoint": checkpoint, "project_id": project}
    missing = [k for k in table.keys if k not in known]
    assert not missing, f"add a sample value for the key(s) {missing} of {table.name} to key_values()"
    return tuple(known[k] for k in table.keys)


TABLE_PARAMS = [pytest.param(t, id=t.name) for t in openai_vtab.TABLES]


@pytest.mark.parametrize("table", TABLE_PARAMS)
def test_declaration_is_complete_and_its_schema_is_plain_sqlite(table: Table) -> None:
    names = [c.name for c in table.columns] + list(table.hidden)
    assert len(names) == len(set(names))
    db = apsw.Connection(":memory:")  # no openai_vtab here: the schema must be ordinary SQL
    db.execute(table.schema())
    info = db.execute(f'PRAGMA table_xinfo("{table.name}")').fetchall()
    assert [row[1] for row in info] == names
    assert [row[2] for row in info] == [c.sql_type for c in table.columns] + ["TEXT HIDDEN"] * len(table.hidden)
    assert table.doc.strip() and table.example.strip()
    assert table.path.startswith("/")
    assert re.search(rf"\b{table.name}\b", table.example), "the example should query its own table"
    assert [c.name for c in table.columns if not c.doc.strip()] == []
    assert [k for k in table.keys if not table.key_doc.get(k, "").strip()] == []  # used in error messages
    assert [o.name for o in table.options if not (o.doc.strip() and o.default in o.choices)] == []


def test_every_table_is_declared_in_tables() -> None:
    declared = [getattr(tables, name) for name in tables.__all__ if isinstance(getattr(tables, name), Table)]
    assert sorted(t.name for t in declared) == sorted(t.name for t in openai_vtab.TABLES)


@pytest.mark.parametrize("table", TABLE_PARAMS)
def test_example_runs_against_the_fake_and_returns_rows(sample: FakeOpenAI, table: Table) -> None:
    db = open_db(sample)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an example naming an id the sample lacks would only warn
        rows = db.execute(table.example).fetchall()
    assert len(rows) >= 1


@pytest.mark.parametrize("table", TABLE_PARAMS)
def test_table_is_reachable_under_its_openai_alias(sample: FakeOpenAI, table: Table) -> None:
    db = open_db(sample)
    args = key_values(sample, table)
    call = f"({', '.join('?' * len(args))})" if args else ""
    # A table that needs a time range (costs, usage) gets all of it.
    where = " AND ".join(f"{c.name} >= 0" for c in table.columns for b in c.bounds if b.required)
    where = f" WHERE {where}" if where else ""
    plain = db.execute(f"SELECT * FROM {table.name}{call}{where}", args).fetchall()
    alias = db.execute(f"SELECT * FROM openai_{table.name}{call}{where}", args).fetchall()
    assert sorted(alias, key=repr) == sorted(plain, key=repr) and alias
    columns = db.execute(f"PRAGMA table_xinfo(openai_{table.name})").fetchall()
    assert columns == db.execute(f"PRAGMA table_xinfo({table.name})").fetchall()
    assert [row[1] for row in columns if row[-1]] == list(table.hidden)  # the keys and options are hidden


def readme_section(name: str) -> list[str] | None:
    """The lines of the README section headed ``### `name```, up to the next heading; None if absent."""
    lines = README.read_text(encoding="utf-8").splitlines()
    heading = f"### `{name}`"
    if heading not in lines:
        return None
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("#")), len(lines))
    return lines[start:end]


@pytest.mark.parametrize("table", TABLE_PARAMS)
def test_readme_documents_the_table_and_all_its_columns(table: Table) -> None:
    assert README.exists(), "README.md is missing"
    section = readme_section(table.name)
    assert section is not None, f"README.md has no section headed ### `{table.name}`"
    documented = {m.group(1) for line in section if (m := re.match(r"\| `([^`]+)` \|", line))}
    wanted = [c.name for c in table.columns] + list(table.hidden)
    assert [c for c in wanted if c not in documented] == [], f"columns of {table.name} missing from the README"


def test_a_user_table_named_openai_requests_is_warned_about() -> None:
    db = apsw.Connection(":memory:")
    db.execute("CREATE TABLE openai_requests(x)")
    with pytest.warns(openai_vtab.TableNameClashWarning, match="your main.openai_requests hides .* rename yours"):
        openai_vtab.register(db, api_key="sk-test-unused-key-000000", base_url="http://127.0.0.1:9/v1")


def test_the_checkpoint_permissions_example_has_rows_in_the_demo() -> None:
    """The demo shares the best checkpoints of two experiments, so the README's example shows what it means."""
    with FakeOpenAI() as api:
        populate(api)
        db = apsw.Connection(":memory:")
        openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url)
        rows = db.execute(tables.checkpoint_permissions.example).fetchall()
        shared = [p["project_id"] for permissions in api.state.permissions.values() for p in permissions]
        assert sorted(project for *_, project in rows) == sorted(shared) and rows
