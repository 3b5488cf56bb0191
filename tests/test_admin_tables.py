"""The organization tables (admin key) over real HTTP to the fake API.

projects, project_api_keys, project_users, project_service_accounts, project_rate_limits, users, invites and
audit_logs: every column against the fake's data, paging with ``after``, the admin key on these tables and the
normal key on the others in one statement, the API's 401 for a normal key (named, masked, and never the key),
a join of projects with their keys, the ``owner_project_access`` pushdown, unknown and missing project ids, and
the demo organization. Each test states the SQL and the traffic it expects.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import apsw
import pytest
import requests

import openai_vtab
from openai_vtab import demo, tables
from openai_vtab.config import mask_key
from openai_vtab.tables import Table
from openai_vtab.testing import FakeOpenAI, RecordedRequest

ADMIN_KEY = "sk-admin-test-3333333333333333"
# The organization's lists (costs and usage, under /organization/ too, are test_usage_tables.py's).
ORGANIZATION_TABLES = [
    t for t in openai_vtab.TABLES if t.path.startswith("/organization/") and t not in openai_vtab.tables.USAGE_TABLES
]
PROJECT_TABLES = [t for t in ORGANIZATION_TABLES if t.keys == ("project_id",)]


def build_organization(api: FakeOpenAI) -> dict[str, Any]:
    """Two active projects and an archived one, with members, service accounts, keys (one of an owner who lost
    access), rate limits, invites and audit log events of both actor kinds."""
    support, analytics = api.add_project("support-bot"), api.add_project("analytics", residency="EU_STORAGE_PROCESSING")
    archived = api.add_project("legacy", status="archived", archived_at=1_730_500_000)
    mei = api.add_user("mei@example.com", name="Mei", role="owner", is_default=True)
    tomas = api.add_user("tomas@example.com", name=None, role="reader", api_key_last_used_at=1_730_600_000)
    for project, user, role in ((support, mei, "owner"), (support, tomas, "member"), (analytics, mei, "member")):
        api.add_project_user(project["id"], user["id"], role=role)
    bot = api.add_project_service_account(support["id"], "ticket-router", role="owner")
    api.add_project_service_account(analytics["id"], "nightly-etl")
    laptop = api.add_project_api_key(support["id"], "mei-laptop", user_id=mei["id"], last_used_at=1_730_700_000)
    api.add_project_api_key(support["id"], "router-prod", service_account_id=bot["id"])
    gone = api.add_project_api_key(analytics["id"], "tomas-old", user_id=tomas["id"], owner_project_access="inactive")
    api.add_project_api_key(analytics["id"], "mei-notebook", user_id=mei["id"])
    api.add_project_rate_limit(support["id"], "gpt-4o-mini", batch_1_day_max_input_tokens=40_000_000)
    api.add_project_rate_limit(analytics["id"], "gpt-4o", requests_per_minute=500, max_images_per_1_minute=5)
    api.add_invite("ana@example.com", projects=[{"id": support["id"], "role": "member"}])
    api.add_invite("sam@example.com", role="owner", status="accepted")
    api.add_audit_log("project.created", api.session_actor(mei), project_id=support["id"], details={"id": "x"})
    api.add_audit_log("api_key.created", api.api_key_actor(laptop), project_id=support["id"])
    api.add_audit_log("login.succeeded", api.session_actor(tomas, "198.51.100.9"))
    return {"projects": (support, analytics, archived), "gone": gone}


@pytest.fixture
def admin_api() -> Iterator[FakeOpenAI]:
    """A fake whose organization routes accept only ADMIN_KEY, and its other routes only the normal key."""
    with FakeOpenAI(admin_api_key=ADMIN_KEY) as fake:
        yield fake


def open_db(api: FakeOpenAI, **options: Any) -> apsw.Connection:
    """A fresh connection (fresh response cache) against ``api``, with the admin key unless told otherwise."""
    db = apsw.Connection(":memory:", statementcachesize=0)
    options.setdefault("admin_api_key", api.admin_api_key)
    openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url, **options)
    return db


def api_value(item: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = item
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def fake_items(api: FakeOpenAI, table: Table, project_id: str | None) -> list[dict[str, Any]]:
    """What the API holds for ``table`` (the items its default listing shows), from the fake's state."""
    org = api.state.organization
    if table is tables.projects:
        return [p for p in org.projects if p["status"] != "archived"]
    if table is tables.project_api_keys:
        return [k for k in org.project_api_keys[project_id or ""] if k["owner_project_access"] == "active"]
    if project_id is not None:
        return getattr(org, table.name)[project_id]
    return list(getattr(org, table.name))


def auth(request: RecordedRequest) -> str:
    return request.headers.get("authorization", "")


@pytest.mark.parametrize("table", ORGANIZATION_TABLES, ids=lambda t: t.name)
def test_rows_match_the_fake_column_by_column(admin_api: FakeOpenAI, table: Table) -> None:
    made = build_organization(admin_api)
    db = open_db(admin_api)
    columns = ", ".join(f'"{c.name}"' for c in table.columns)
    typeofs = ", ".join(f'typeof("{c.name}")' for c in table.columns)
    project_ids: list[str | None] = [p["id"] for p in made["projects"][:2]] if table.keys else [None]
    for project_id in project_ids:
        call = "(?)" if project_id else ""
        rows = db.execute(
            f"SELECT {columns}, {typeofs} FROM {table.name}{call}", [project_id] if project_id else []
        ).fetchall()
        width = len(table.columns)
        got = []
        for row in rows:
            values, kinds = row[:width], row[width:]
            for column, kind in zip(table.columns, kinds, strict=True):
                wanted = {"TEXT": "text", "INTEGER": "integer", "REAL": "real", "JSON": "text"}[column.type]
                assert kind in (wanted, "null"), f"{table.name}.{column.name} is {kind}"
            got.append(
                tuple(
                    json.loads(v) if c.type == "JSON" and v is not None else v
                    for c, v in zip(table.columns, values, strict=True)
                )
            )
        want = [
            tuple(api_value(item, c.path) for c in table.columns) for item in fake_items(admin_api, table, project_id)
        ]
        assert sorted(got, key=repr) == sorted(want, key=repr) and got
    assert {auth(r) for r in admin_api.requests} == {f"Bearer {ADMIN_KEY}"}


def test_projects_leave_out_archived_ones_and_booleans_are_integers(admin_api: FakeOpenAI) -> None:
    build_organization(admin_api)
    db = open_db(admin_api)
    assert db.execute("SELECT name, status, residency FROM projects ORDER BY created_at").fetchall() == [
        ("support-bot", "active", None),
        ("analytics", "active", "EU_STORAGE_PROCESSING"),
    ]
    assert db.execute("SELECT email, is_default, is_service_account FROM users ORDER BY added_at").fetchall() == [
        ("mei@example.com", 1, 0),
        ("tomas@example.com", 0, 0),
    ]
    assert [r.params for r in admin_api.requests] == [{"limit": "100"}, {"limit": "100"}]


def test_users_page_across_three_requests_with_after(admin_api: FakeOpenAI) -> None:
    users = [admin_api.add_user(f"user{i:03d}@example.com") for i in range(250)]
    db = open_db(admin_api)
    assert db.execute("SELECT email FROM users").fetchall() == [(u["email"],) for u in users]
    assert [r.params for r in admin_api.requests_to("users")] == [
        {"limit": "100"},
        {"limit": "100", "after": users[99]["id"]},
        {"limit": "100", "after": users[199]["id"]},
    ]


def test_audit_logs_page_newest_first_with_after(admin_api: FakeOpenAI) -> None:
    user = admin_api.add_user("mei@example.com")
    events = [admin_api.add_audit_log("login.succeeded", admin_api.session_actor(user)) for _ in range(130)]
    db = open_db(admin_api)
    got = db.execute("SELECT id, effective_at, session_user_email, actor_type FROM audit_logs").fetchall()
    newest_first = events[::-1]
    assert got == [(e["id"], e["effective_at"], "mei@example.com", "session") for e in newest_first]
    assert [r.params for r in admin_api.requests_to("audit_logs")] == [
        {"limit": "100"},
        {"limit": "100", "after": newest_first[99]["id"]},
    ]


def test_project_api_keys_page_per_project(admin_api: FakeOpenAI) -> None:
    project = admin_api.add_project("big")
    account = admin_api.add_project_service_account(project["id"], "bot")
    keys = [admin_api.add_project_api_key(project["id"], f"k{i}", service_account_id=account["id"]) for i in range(150)]
    db = open_db(admin_api)
    rows = db.execute("SELECT name FROM project_api_keys WHERE project_id = ?", (project["id"],)).fetchall()
    assert rows == [(k["name"],) for k in keys]
    assert [(r.path, r.params) for r in admin_api.requests] == [
        (f"/v1/organization/projects/{project['id']}/api_keys", {"limit": "100"}),
        (f"/v1/organization/projects/{project['id']}/api_keys", {"limit": "100", "after": keys[99]["id"]}),
    ]


def test_join_projects_with_their_api_keys(admin_api: FakeOpenAI) -> None:
    support, analytics, _ = build_organization(admin_api)["projects"]
    db = open_db(admin_api)
    rows = db.execute(
        "SELECT p.name, k.name FROM projects p JOIN project_api_keys k ON k.project_id = p.id ORDER BY 1, 2"
    ).fetchall()
    assert rows == [
        ("analytics", "mei-notebook"),
        ("support-bot", "mei-laptop"),
        ("support-bot", "router-prod"),
    ]
    assert sorted(r.path for r in admin_api.requests) == sorted(
        [
            "/v1/organization/projects",
            f"/v1/organization/projects/{support['id']}/api_keys",
            f"/v1/organization/projects/{analytics['id']}/api_keys",
        ]
    )


def test_owner_project_access_is_sent_to_the_api(admin_api: FakeOpenAI) -> None:
    made = build_organization(admin_api)
    analytics = made["projects"][1]["id"]
    db = open_db(admin_api)
    rows = db.execute(
        "SELECT name, owner_user_email FROM project_api_keys(?) WHERE owner_project_access = 'inactive'", (analytics,)
    ).fetchall()
    assert rows == [("tomas-old", "tomas@example.com")]
    assert [r.params for r in admin_api.requests] == [{"limit": "100", "owner_project_access": "inactive"}]


def test_one_statement_uses_the_admin_key_for_the_organization_and_the_normal_key_elsewhere(
    admin_api: FakeOpenAI,
) -> None:
    build_organization(admin_api)
    admin_api.add_model("gpt-4o-mini", owned_by="system")
    db = open_db(admin_api)
    rows = db.execute(
        "SELECT r.model, m.owned_by FROM projects p JOIN project_rate_limits r ON r.project_id = p.id "
        "JOIN models m ON m.id = r.model"
    ).fetchall()
    assert rows == [("gpt-4o-mini", "system")]
    assert {(r.route, auth(r)) for r in admin_api.requests} == {
        ("projects", f"Bearer {ADMIN_KEY}"),
        ("project_rate_limits", f"Bearer {ADMIN_KEY}"),
        ("models", f"Bearer {admin_api.api_key}"),
    }


@pytest.mark.parametrize("table", ORGANIZATION_TABLES, ids=lambda t: t.name)
def test_a_normal_key_gets_the_apis_401_naming_table_admin_key_and_masked_key(
    admin_api: FakeOpenAI, table: Table
) -> None:
    project = admin_api.add_project("p")
    db = open_db(admin_api, admin_api_key=None)
    call = "(?)" if table.keys else ""
    with pytest.raises(openai_vtab.AuthenticationError) as caught:
        db.execute(f"SELECT * FROM {table.name}{call}", [project["id"]] if table.keys else []).fetchall()
    message = str(caught.value)
    assert caught.value.status_code == 401
    assert message.startswith(f"{table.name}: GET /organization/")
    assert "Missing scopes: api.management.read" in message  # the API's own words for a project key
    assert "OPENAI_ADMIN_KEY" in message and mask_key(admin_api.api_key) in message
    assert admin_api.api_key not in message and ADMIN_KEY not in message
    assert [auth(r) for r in admin_api.requests] == [f"Bearer {admin_api.api_key}"]


def test_the_fake_refuses_each_key_where_the_other_belongs(admin_api: FakeOpenAI) -> None:
    def get(path: str, key: str) -> requests.Response:
        return requests.get(f"{admin_api.base_url}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=10)

    assert get("/organization/projects", ADMIN_KEY).status_code == 200
    assert get("/models", admin_api.api_key).status_code == 200
    refused = get("/organization/projects", admin_api.api_key)
    assert refused.status_code == 401 and "Missing scopes" in refused.json()["error"]["message"]
    assert get("/models", ADMIN_KEY).status_code == 401


@pytest.mark.parametrize("table", PROJECT_TABLES, ids=lambda t: t.name)
def test_project_tables_without_a_project_id_fail_before_any_request(admin_api: FakeOpenAI, table: Table) -> None:
    db = open_db(admin_api)
    with pytest.raises(openai_vtab.MissingRequiredKeyError) as caught:
        db.execute(f"SELECT * FROM {table.name}").fetchall()
    assert f"{table.name} needs project_id" in str(caught.value) and "proj_abc" in str(caught.value)
    assert admin_api.requests == []


@pytest.mark.parametrize("table", PROJECT_TABLES, ids=lambda t: t.name)
def test_an_unknown_project_warns_and_gives_no_rows(admin_api: FakeOpenAI, table: Table) -> None:
    db = open_db(admin_api)
    with pytest.warns(openai_vtab.UnknownKeyWarning, match="proj_nope"):
        assert db.execute(f"SELECT * FROM {table.name}('proj_nope')").fetchall() == []
    assert [r.path for r in admin_api.requests] == [
        f"/v1/organization/projects/proj_nope/{table.path.rsplit('/', 1)[1]}"
    ]


# -- the demo organization ----------------------------------------------------------------------------------


def test_the_demo_has_an_organization_for_every_admin_table() -> None:
    with FakeOpenAI() as api:
        demo.populate(api)
        db = open_db(api)
        for table in ORGANIZATION_TABLES:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # an unknown project would only warn
                rows = db.execute(table.example).fetchall()
            assert rows, f"the demo gives {table.name}'s example no rows"
        names = db.execute("SELECT id, name FROM projects").fetchall()
        assert sorted(names) == sorted(demo.PROJECTS.items())
        owners = {json.loads(job)["owner"] for (job,) in db.execute("SELECT metadata FROM fine_tuning_jobs").fetchall()}
        assert owners <= {email.split("@")[0] for (email,) in db.execute("SELECT email FROM users").fetchall()}


def test_the_demo_organization_leaves_the_rest_of_the_demo_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    def everything(api: FakeOpenAI) -> list[Any]:
        state = api.state
        return [
            state.jobs,
            state.checkpoints,
            state.events,
            state.models,
            state.files,
            state.batches,
            state.permissions,
            state.contents,
        ]

    with FakeOpenAI() as full, FakeOpenAI() as without:
        demo.populate(full)
        with monkeypatch.context() as patch:
            patch.setattr(demo._Members, "build", lambda self: None)
            demo.populate(without)
        assert without.state.organization.users == [] and full.state.organization.users
        assert everything(full) == everything(without)


@pytest.mark.parametrize(
    ("where", "sent"),
    [
        ("effective_at >= {t}", {"effective_at[gte]": "{t}"}),
        ("effective_at > {t}", {"effective_at[gt]": "{t}"}),
        ("effective_at <= {t}", {"effective_at[lte]": "{t}"}),
        ("effective_at < {t}", {"effective_at[lt]": "{t}"}),
        ("effective_at = {t}", {"effective_at[gte]": "{t}"}),
        ("effective_at >= {t} AND effective_at < {t} + 7200", {"effective_at[gte]": "{t}", "effective_at[lt]": "{u}"}),
        ("effective_at > {t} - 0.5", {"effective_at[gt]": "{s}"}),
    ],
)
def test_audit_log_time_ranges_are_sent_as_effective_at_and_keep_every_row(
    admin_api: FakeOpenAI, where: str, sent: dict[str, str]
) -> None:
    build_organization(admin_api)
    times = sorted(e["effective_at"] for e in admin_api.state.organization.audit_logs)
    t = times[len(times) // 2]
    values = {"t": t, "u": t + 7200, "s": t - 1}
    db = open_db(admin_api)
    admin_api.clear()
    got = db.execute(f"SELECT id FROM audit_logs WHERE {where.format(**values)} ORDER BY id").fetchall()
    (request,) = admin_api.requests_to("audit_logs")
    params = {k: v for k, v in request.params.items() if k.startswith("effective_at")}
    assert params == {k: v.format(**values) for k, v in sent.items()}
    everything = db.execute("SELECT id, effective_at FROM audit_logs").fetchall()
    plain = apsw.Connection(":memory:")
    plain.execute("CREATE TABLE audit_logs(id, effective_at)")
    plain.executemany("INSERT INTO audit_logs VALUES (?, ?)", everything)
    want = plain.execute(f"SELECT id FROM audit_logs WHERE {where.format(**values)} ORDER BY id").fetchall()
    assert got == want and got
