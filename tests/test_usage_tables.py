"""costs and usage_*: rows inside time buckets, start_time/end_time pushed down, next_page tokens, bucket_width.

The fake keeps individual records and aggregates them per request as the API does; expected sums are computed
here from those records, never from what the package returned.
"""

from __future__ import annotations

import json
import warnings
from collections import defaultdict
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import apsw
import pytest

import openai_vtab
from openai_vtab.demo import PROJECTS, populate
from openai_vtab.tables import USAGE_TABLES
from openai_vtab.testing import FakeOpenAI

ADMIN_KEY = "sk-admin-test-0000000000000000"
DAY = 86_400
T0 = 1_767_225_600  # 2026-01-01 00:00 UTC
NOW = T0 + 45 * DAY + 13 * 3_600
PROJECT_IDS = ("proj_a", "proj_b", "proj_c")


@pytest.fixture
def usage_api() -> Iterator[FakeOpenAI]:
    """45 days of costs and completions for three projects, with the fake's clock at day 45, 13:00."""
    with FakeOpenAI(admin_api_key=ADMIN_KEY) as api:
        api.clock = lambda: NOW
        for day in range(46):
            for n, project in enumerate(PROJECT_IDS):
                for hour in (3, 15):
                    at = T0 + day * DAY + hour * 3_600 + n
                    if at > NOW:
                        continue
                    value = round(0.5 + day * 0.01 + n + hour / 100, 4)
                    api.add_cost(
                        at, value, project_id=project, line_item=f"gpt-4o-mini, {'input' if hour == 3 else 'output'}"
                    )
                    api.add_usage(
                        "completions",
                        at,
                        input_tokens=1000 + day,
                        output_tokens=100 + n,
                        num_model_requests=1,
                        project_id=project,
                        model="gpt-4o-mini" if n else "gpt-4o",
                        api_key_id=f"key_{n}",
                        batch=hour == 3,
                    )
        yield api


def open_db(api: FakeOpenAI, **options: Any) -> apsw.Connection:
    db = apsw.Connection(":memory:", statementcachesize=0)
    options.setdefault("admin_api_key", ADMIN_KEY)
    openai_vtab.register(db, api_key="sk-test-project-key-000000", base_url=api.base_url, cache_ttl=0, **options)
    return db


def query_of(request: Any) -> list[tuple[str, str]]:
    """The request's query as sent: repeated array parameters kept."""
    return parse_qsl(request.query, keep_blank_values=True)


def expected_costs(api: FakeOpenAI, since: int, until: int | None = None) -> dict[tuple[str, str], float]:
    sums: dict[tuple[str, str], float] = defaultdict(float)
    for record in api.state.usage["costs"]:
        day_start = record["at"] - record["at"] % DAY
        if day_start >= since and (until is None or day_start + DAY <= until):
            day = str(day_start // DAY)
            sums[(day, record["project_id"])] += record["value"]
    return {key: round(value, 6) for key, value in sums.items()}


@pytest.mark.parametrize("days", [1, 7, 31, 40, 45])
def test_costs_per_day_and_project_add_up_to_the_records_across_pages(usage_api: FakeOpenAI, days: int) -> None:
    since = T0 + (45 - days) * DAY
    db = open_db(usage_api)
    rows = db.execute(
        "SELECT CAST(start_time / 86400 AS TEXT), project_id, round(sum(amount_value), 6) FROM costs "
        "WHERE start_time >= ? GROUP BY 1, 2",
        (since,),
    ).fetchall()
    assert {(d, p): v for d, p, v in rows} == expected_costs(usage_api, since)
    sent = usage_api.requests_to("costs")
    buckets = days + 1  # the day of NOW is a bucket too
    assert len(sent) == -(-buckets // 180) == 1
    assert dict(query_of(sent[0]))["start_time"] == str(since)


def test_usage_pages_with_next_page_tokens_sent_back_unencoded(usage_api: FakeOpenAI) -> None:
    db = open_db(usage_api)
    total = db.execute("SELECT sum(input_tokens) FROM usage_completions WHERE start_time >= ?", (T0,)).fetchone()[0]
    assert total == sum(r["input_tokens"] for r in usage_api.state.usage["completions"])
    sent = usage_api.requests_to("usage_completions")
    assert len(sent) == 2  # 46 daily buckets, 31 a page
    first, second = (dict(query_of(r)) for r in sent)
    assert first["limit"] == second["limit"] == "31"
    assert "page" not in first
    assert second["page"].endswith("=") and f"page={second['page']}" in sent[1].query  # '=' not encoded


def test_every_group_by_field_is_asked_for_and_ungrouped_fields_are_null(usage_api: FakeOpenAI) -> None:
    db = open_db(usage_api)
    rows = db.execute(
        "SELECT DISTINCT project_id, model, api_key_id, batch, user_id, service_tier FROM usage_completions "
        "WHERE start_time >= ? ORDER BY 1, 4",
        (T0 + 44 * DAY,),
    ).fetchall()
    assert rows == [
        ("proj_a", "gpt-4o", "key_0", 0, None, None),
        ("proj_a", "gpt-4o", "key_0", 1, None, None),
        ("proj_b", "gpt-4o-mini", "key_1", 0, None, None),
        ("proj_b", "gpt-4o-mini", "key_1", 1, None, None),
        ("proj_c", "gpt-4o-mini", "key_2", 0, None, None),
        ("proj_c", "gpt-4o-mini", "key_2", 1, None, None),
    ]
    grouped = [v for k, v in query_of(usage_api.requests_to("usage_completions")[0]) if k == "group_by[]"]
    assert grouped == ["project_id", "user_id", "api_key_id", "model", "batch", "service_tier"]
    costs_groups = [
        v for k, v in query_of(_first_request(usage_api, db, "SELECT * FROM costs WHERE start_time >= 0", "costs"))
    ]
    assert {"project_id", "line_item", "api_key_id"} <= set(costs_groups)


def _first_request(api: FakeOpenAI, db: apsw.Connection, sql: str, route: str) -> Any:
    api.clear()
    db.execute(sql).fetchall()
    return api.requests_to(route)[0]


@pytest.mark.parametrize(
    ("where", "start", "end"),
    [
        ("start_time >= {a}", "{a}", None),
        ("start_time > {a}", "{a}", None),
        ("start_time = {a}", "{a}", None),
        ("start_time >= {a} AND start_time > {b}", "{b}", None),
        ("start_time >= {a} AND end_time <= {b}", "{a}", "{b}"),
        ("start_time >= {a} AND end_time < {b}", "{a}", "{b}"),
        ("start_time >= {a} AND end_time <= {b} AND end_time <= {c}", "{a}", "{b}"),
        ("start_time >= {a} + 0.5", "{a}", None),
        ("{a} <= start_time", "{a}", None),
    ],
)
def test_time_bounds_are_pushed_down_as_a_superset_and_sqlite_keeps_the_rest(
    usage_api: FakeOpenAI, where: str, start: str, end: str | None
) -> None:
    values = {"a": T0 + 10 * DAY, "b": T0 + 20 * DAY, "c": T0 + 30 * DAY}
    db = open_db(usage_api)
    sql_where = where.format(**values)
    got = db.execute(
        f"SELECT start_time, project_id, line_item, amount_value FROM costs WHERE {sql_where} ORDER BY 1, 2, 3"
    ).fetchall()
    sent = dict(query_of(usage_api.requests_to("costs")[0]))
    assert sent["start_time"] == start.format(**values)
    assert sent.get("end_time") == (end.format(**values) if end else None)
    # The same rows as from a plain table holding every bucket: the pushdown dropped nothing.
    plain = open_db(usage_api)
    plain.execute("CREATE TABLE everything AS SELECT * FROM costs WHERE start_time >= 0")
    want = plain.execute(
        f"SELECT start_time, project_id, line_item, amount_value FROM everything WHERE {sql_where} ORDER BY 1, 2, 3"
    ).fetchall()
    assert got == want and got


@pytest.mark.parametrize(
    "where",
    [
        "",
        "WHERE end_time <= 1767225600",
        "WHERE start_time < 1767225600",
        "WHERE start_time >= 1767225600 OR project_id = 'proj_a'",
        "WHERE start_time != 1767225600",
    ],
)
def test_a_query_without_a_lower_bound_on_start_time_fails_before_any_request(
    usage_api: FakeOpenAI, where: str
) -> None:
    db = open_db(usage_api)
    with pytest.raises(openai_vtab.MissingRequiredKeyError) as caught:
        db.execute(f"SELECT * FROM costs {where}").fetchall()
    message = str(caught.value)
    assert "costs needs a lower bound on start_time" in message
    assert "start_time >= unixepoch('now', '-30 days')" in message
    assert usage_api.requests == []


def test_a_text_bound_on_a_time_is_refused_with_the_fix(usage_api: FakeOpenAI) -> None:
    db = open_db(usage_api)
    with pytest.raises(openai_vtab.InvalidKeyError, match=r"costs: start_time .* unix seconds .*unixepoch"):
        db.execute("SELECT * FROM costs WHERE start_time >= '2026-01-01'").fetchall()
    assert usage_api.requests == []


def test_bucket_width_is_a_hidden_option_pushed_down_with_its_page_size(usage_api: FakeOpenAI) -> None:
    db = open_db(usage_api)
    since = T0 + 44 * DAY
    hourly = db.execute(
        "SELECT bucket_width, count(DISTINCT start_time), sum(input_tokens) FROM usage_completions "
        "WHERE start_time >= ? AND bucket_width = '1h'",
        (since,),
    ).fetchone()
    daily = db.execute(
        "SELECT bucket_width, count(DISTINCT start_time), sum(input_tokens) FROM usage_completions "
        "WHERE start_time >= ?",
        (since,),
    ).fetchone()
    assert hourly[0] == "1h" and daily[0] == "1d"
    assert hourly[2] == daily[2] > 0
    assert hourly[1] == 3 and daily[1] == 2  # the hours with use: 3:00 and 15:00 of day 44, 3:00 of day 45
    widths = [(dict(query_of(r)).get("bucket_width"), dict(query_of(r))["limit"]) for r in usage_api.requests]
    assert widths[0] == ("1h", "168") and widths[-1] == ("1d", "31")
    both = db.execute(
        "SELECT bucket_width, sum(input_tokens) FROM usage_completions WHERE start_time >= ? "
        "AND bucket_width IN ('1d', '1h') GROUP BY 1",
        (since,),
    ).fetchall()
    assert both == [("1d", daily[2]), ("1h", daily[2])]


def test_an_unknown_bucket_width_fails_with_the_choices(usage_api: FakeOpenAI) -> None:
    db = open_db(usage_api)
    with pytest.raises(openai_vtab.OpenAIVTabError, match=r"bucket_width.*'1d', '1h', '1m'"):
        db.execute("SELECT * FROM usage_completions WHERE start_time >= 0 AND bucket_width = '1w'").fetchall()
    assert usage_api.requests == []


def test_a_result_without_amount_is_null_not_an_error(usage_api: FakeOpenAI) -> None:
    usage_api.inject("status", match="/organization/costs", status=200, body=json.dumps(_bare_costs()).encode())
    db = open_db(usage_api)
    rows = db.execute("SELECT amount_value, amount_currency, project_id FROM costs WHERE start_time >= 0").fetchall()
    assert rows == [(None, None, None)]


def _bare_costs() -> dict[str, Any]:
    bucket = {
        "object": "bucket",
        "start_time": T0,
        "end_time": T0 + DAY,
        "results": [{"object": "organization.costs.result"}],
    }
    return {"object": "page", "data": [bucket], "has_more": False, "next_page": None}


def test_the_normal_key_is_refused_with_which_key_is_needed(usage_api: FakeOpenAI) -> None:
    db = open_db(usage_api, admin_api_key=None)
    with pytest.raises(openai_vtab.AuthenticationError) as caught:
        db.execute("SELECT * FROM costs WHERE start_time >= 0").fetchall()
    message = str(caught.value)
    assert "costs" in message and "OPENAI_ADMIN_KEY" in message
    assert "sk-test-project-key-000000" not in message


@pytest.mark.parametrize("table", USAGE_TABLES, ids=lambda t: t.name)
def test_every_usage_table_reads_the_demo(table: Any) -> None:
    with FakeOpenAI() as api:
        populate(api)
        db = apsw.Connection(":memory:")
        openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            rows = db.execute(table.example).fetchall()
        assert all(len(r) >= 1 for r in rows)


def test_the_demo_spends_in_every_project_within_the_last_thirty_days() -> None:
    with FakeOpenAI() as api:
        populate(api)
        db = apsw.Connection(":memory:")
        openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url)
        spent = db.execute(
            "SELECT p.name, round(sum(c.amount_value), 2) FROM costs c JOIN projects p ON p.id = c.project_id "
            "WHERE c.start_time >= unixepoch('now', '-30 days') GROUP BY p.name"
        ).fetchall()
        assert {name for name, _ in spent} == set(PROJECTS.values())
        assert all(usd > 0 for _, usd in spent)
