"""orjson's path (openai_vtab.jsonfast) gives exactly the values and the JSON text the standard library gives.

Three layers: each case where orjson differs from the standard library is sent to the standard library; random
values decode and encode the same both ways; and every table over the demo organization and over the fake's own
data (with the awkward values among its metrics) answers the same rows, bit for bit, with orjson and without it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import apsw
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import openai_vtab
from openai_vtab import jsonfast
from openai_vtab.demo import populate
from openai_vtab.tables import TABLES
from openai_vtab.testing import FakeOpenAI
from openai_vtab.testing.usage import COUNTS


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types, -0.0 apart from 0.0 and NaN equal to NaN: what repr tells apart."""
    return repr(a) == repr(b)


# (body, why orjson alone would get it wrong)
DECODE_CASES = [
    (b'{"loss": NaN}', "rejects NaN"),
    (b'{"loss": Infinity, "acc": -Infinity}', "rejects Infinity"),
    (b'{"loss": 1e400}', "rejects a number beyond a float"),
    (b'\xef\xbb\xbf{"id": "x"}', "rejects a UTF-8 BOM"),
    (b'{"name": "\\ud800 alone"}', "rejects an escaped lone surrogate"),
    (b'{"name": "\xed\xa0\x80"}', "rejects a lone surrogate in UTF-8"),
    (b'{"tokens": 123456789012345678901}', "turns an integer beyond 64 bits into a float"),
    (b'{"tokens": -98765432109876543210}', "turns a negative integer beyond 64 bits into a float"),
    (b"[1, 18446744073709551616]", "turns 2**64 into a float"),
]


@pytest.mark.parametrize(("body", "why"), DECODE_CASES, ids=[why for _, why in DECODE_CASES])
def test_loads_falls_back_where_orjson_differs(body: bytes, why: str) -> None:
    expected = json.loads(body)
    try:
        alone = orjson.loads(body)
    except orjson.JSONDecodeError:
        alone = "rejected"
    assert not same(alone, expected), f"orjson no longer {why}: the fallback may be needless"
    assert same(jsonfast.loads(body), expected)


def test_loads_fails_with_the_standard_librarys_error() -> None:
    with pytest.raises(json.JSONDecodeError) as raised:
        jsonfast.loads(b'{"data": [1, 2')
    assert type(raised.value) is json.JSONDecodeError
    assert raised.value.msg == "Expecting ',' delimiter"


ENCODE_CASES = [
    ({"loss": math.nan}, "writes null for NaN"),
    ({"loss": math.inf, "acc": -math.inf}, "writes null for infinities"),
    ({"lr": 1e-05}, "writes 0.00001 for 1e-05"),
    ({"lr": 2.5e-07}, "writes 2.5e-7 for 2.5e-07"),
    ({"tokens": 2**64}, "rejects an integer beyond 64 bits"),
    ({"name": "\ud800 alone"}, "rejects a lone surrogate"),
]


@pytest.mark.parametrize(("value", "why"), ENCODE_CASES, ids=[why for _, why in ENCODE_CASES])
def test_dumps_falls_back_where_orjson_differs(value: Any, why: str) -> None:
    expected = jsonfast.std_dumps(value)
    try:
        alone = orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        alone = "rejected"
    assert alone != expected, f"orjson no longer {why}: the fallback may be needless"
    assert jsonfast.dumps(value) == expected


def test_dumps_writes_compact_text_with_non_ascii_kept() -> None:
    value = {"a": [1, 2.5, None, True], "é": "ok 😀", "ctl": '\x00\x1f\n"\\'}
    assert jsonfast.dumps(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(codec=None)),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_random_values_encode_and_decode_as_the_standard_library_does(value: Any) -> None:
    text = jsonfast.std_dumps(value)
    assert jsonfast.dumps(value) == text
    bodies = (text.encode("utf-8", "surrogatepass"), json.dumps(value).encode(), json.dumps(value, indent=1).encode())
    for body in bodies:
        assert same(jsonfast.loads(body), json.loads(body))


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False) | st.integers())
def test_numbers_as_the_api_writes_them_decode_alike(number: float) -> None:
    body = f'{{"a": {number!r}, "b": [{number!r}]}}'.encode()
    assert same(jsonfast.loads(body), json.loads(body))


# Where each table's required key comes from: every key of every row, so that every table reads all it has.
KEY_SOURCES = {
    "fine_tuning_job_id": "SELECT id FROM fine_tuning_jobs",
    "fine_tuned_model_checkpoint": (
        "SELECT fine_tuned_model_checkpoint FROM job_checkpoints "
        "WHERE fine_tuning_job_id IN (SELECT id FROM fine_tuning_jobs)"
    ),
    "project_id": "SELECT id FROM projects",
}


def every_row(db: apsw.Connection) -> dict[str, str]:
    """repr of every row (hidden columns included) of every table, ordered by its rowid-independent content."""
    out = {}
    for table in TABLES:
        where = [f"{key} IN ({KEY_SOURCES[key]})" for key in table.keys]
        where += [f"{column} >= unixepoch('now', '-60 days')" for column, _ in table.required_bounds]
        columns = ", ".join([*(c.name for c in table.columns), *table.keys])
        sql = f"SELECT {columns} FROM {table.name}" + (f" WHERE {' AND '.join(where)}" if where else "")
        out[table.name] = repr(sorted(db.execute(sql).fetchall(), key=repr))
    return out


def awkward_fake(api: FakeOpenAI) -> None:
    """The fake's own generated data, plus a job whose metrics hold what orjson alone gets wrong (but a lone
    surrogate, which no row can hold: SQLite text is UTF-8)."""
    job = api.add_job(id="ftjob-plain")
    api.add_checkpoints(job["id"], 250)
    api.add_event(job["id"], "Step 1/250: training loss=2.01 ünïcödé")
    # One job each: a page orjson rejects (NaN) goes to the standard library whole, values and all.
    for step, metrics in enumerate(
        [
            {"train_loss": math.nan, "valid_loss": math.inf},
            {"train_loss": 1e-05, "full_valid_loss": 2.5e-07},
            {"train_loss": 0.5, "tokens": 2**70},
            {"train_loss": 1, "note": "\u2028 ünïcödé 😀"},
            {"train_loss": 1e300, "valid_loss": -0.0, "null": None},
        ],
        start=1,
    ):
        api.add_job(id=f"ftjob-awkward-{step}")
        api.add_checkpoint(f"ftjob-awkward-{step}", step, metrics)
    for kind, counts in COUNTS.items():  # the demo organization uses only some kinds of usage
        api.add_usage(kind, int(time.time()) - 86_400, project_id="proj_x", **dict.fromkeys(counts, 3))
        api.add_usage(kind, int(time.time()) - 3_600, project_id="proj_x", **dict.fromkeys(counts, 7))


@pytest.fixture(params=["demo organization", "fake's data"])
def served(request: pytest.FixtureRequest) -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as api:
        (populate if request.param == "demo organization" else awkward_fake)(api)
        yield api


def test_every_table_gives_the_same_rows_with_orjson_and_without(
    served: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    def rows() -> dict[str, str]:
        db = apsw.Connection(":memory:")
        with openai_vtab.register(db, api_key=served.api_key, base_url=served.base_url, cache_ttl=0):
            return every_row(db)

    assert jsonfast._orjson is orjson
    with_orjson = rows()
    monkeypatch.setattr(jsonfast, "_orjson", None)
    standard = rows()
    assert with_orjson == standard
    # The comparison saw rows: the demo organization has some in every table but most usage kinds, which the
    # fake's data has; the awkward job's rows hold the values only the standard library reads and writes so.
    if "ftjob-awkward" in standard["job_checkpoints"]:
        assert "NaN" in standard["job_checkpoints"] and "1e-05" in standard["job_checkpoints"]
        assert "1180591620717411303424" in standard["job_checkpoints"]
        expected = {name for name in standard if name.startswith("usage_")}
    else:
        expected = {name for name in standard if not name.startswith("usage_")}
    assert not {name for name in expected if standard[name] == "[]"}
