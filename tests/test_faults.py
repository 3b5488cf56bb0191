"""Faults, bad input and secrets: every fault is injected by the fake API's switches over real HTTP.

The rule under test: a query gives the right rows or one of the package's own clear errors; never a partial
result that looks complete, never a hang, never the API key in a message.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import apsw
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import openai_vtab
from openai_vtab import client
from openai_vtab.client import _Answer, _Retry
from openai_vtab.testing import FakeOpenAI

Connect = Callable[..., apsw.Connection]
FAST = {"retry-after-ms": "5"}  # lets the retries in these tests wait 5 ms instead of the backoff


def job_with(api: FakeOpenAI, count: int, **fields: object) -> str:
    job = api.add_job(**fields)
    api.add_checkpoints(job["id"], count)
    return job["id"]


def log(db: apsw.Connection) -> list[tuple[object, ...]]:
    return db.execute("SELECT status, attempts, cached, error FROM openai_requests ORDER BY seq").fetchall()


# -- retries ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried_and_the_rows_are_right(api: FakeOpenAI, db: apsw.Connection, status: int):
    job = job_with(api, 3)
    api.fail(status, times=2, headers=FAST)
    assert db.execute("SELECT count(*) FROM job_checkpoints(?)", (job,)).fetchone() == (3,)
    assert len(api.requests) == 3
    assert log(db) == [(200, 3, 0, None)]


def test_non_retryable_status_is_not_retried(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 3)
    api.fail(400, headers=FAST)
    with pytest.raises(openai_vtab.BadRequestError):
        db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    assert len(api.requests) == 1


def test_retries_give_up_after_max_retries(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 3)
    api.fail(503, times=10, headers=FAST)
    with pytest.raises(openai_vtab.InternalServerError, match=r"HTTP 503.*gave up after 3 attempt\(s\)"):
        db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    assert len(api.requests) == 3  # max_retries defaults to 2, like the official SDK
    [(status, attempts, _, error)] = log(db)
    assert (status, attempts) == (503, 3) and "HTTP 503" in error


def test_max_retries_is_configurable(api: FakeOpenAI, connect: Connect) -> None:
    job = job_with(api, 1)
    api.fail(500, times=10, headers=FAST)
    with pytest.raises(openai_vtab.InternalServerError):
        connect(max_retries=5).execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    assert len(api.requests) == 6


def test_retry_after_beyond_the_cap_fails_at_once_saying_how_long(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 1)
    api.fail(429, times=5, headers={"Retry-After": "120"})
    started = time.monotonic()
    with pytest.raises(openai_vtab.RateLimitError, match="asked to wait 120 s, longer than the 30 s") as caught:
        db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    assert time.monotonic() - started < 5  # it did not sleep the two minutes
    assert caught.value.status_code == 429
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after-ms": "1500", "Retry-After": "9"}, 1.5),
        ({"Retry-After": "not a date"}, None),
        ({}, None),
    ],
)
def test_retry_after_headers_are_read(headers: dict[str, str], seconds: float | None) -> None:
    assert _Retry().get_retry_after(_Answer(429, b"", headers)) == seconds


def test_retry_after_as_an_http_date_is_read() -> None:
    in_ten = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 10))
    wait = _Retry().get_retry_after(_Answer(429, b"", {"Retry-After": in_ten}))
    assert wait is not None and 8 <= wait <= 10


def test_retry_after_is_honoured_over_http(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 1)
    api.fail(429, headers={"Retry-After": "1"})
    db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    first, second = api.requests
    assert first.params == second.params
    assert log(db) == [(200, 2, 0, None)]


def test_connection_drops_are_retried(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 2)
    api.inject("disconnect", times=1)
    assert db.execute("SELECT count(*) FROM job_checkpoints(?)", (job,)).fetchone() == (2,)
    assert len(api.requests) == 2


def test_connection_that_keeps_dropping_fails_clearly(api: FakeOpenAI, connect: Connect) -> None:
    job = job_with(api, 2)
    api.inject("disconnect", times=10)
    with pytest.raises(
        openai_vtab.APIConnectionError,
        match=r"the connection to 127\.0\.0\.1:\d+ broke after the request was sent, 2 attempt",
    ):
        connect(max_retries=1).execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()


def test_nothing_listening_fails_clearly(connect: Connect) -> None:
    with socket_closed_port() as port:
        db = connect(base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
        with pytest.raises(openai_vtab.APIConnectionError, match="check your network and OPENAI_BASE_URL"):
            db.execute("SELECT * FROM fine_tuning_jobs").fetchall()


class socket_closed_port:  # noqa: N801 - used as a context manager
    """A port on 127.0.0.1 that nothing listens on."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        pass


def test_a_server_that_stops_answering_times_out(api: FakeOpenAI, connect: Connect) -> None:
    job = job_with(api, 1)
    api.inject("hang", seconds=5)
    started = time.monotonic()
    with pytest.raises(openai_vtab.APITimeoutError, match=r"no answer within the read timeout of 0\.3 s"):
        connect(timeout=0.3, max_retries=0).execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    assert time.monotonic() - started < 4  # it gave up long before the server's 5 s hang ended


def test_a_timeout_is_retried(api: FakeOpenAI, connect: Connect) -> None:
    job = job_with(api, 1)
    api.inject("hang", seconds=1)
    assert connect(timeout=0.3).execute("SELECT count(*) FROM job_checkpoints(?)", (job,)).fetchone() == (1,)
    assert len(api.requests) == 2


# -- never a partial result ---------------------------------------------------------------------------


def test_a_page_failing_mid_way_fails_the_statement(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 250)
    api.fail(500, skip=1, times=10, headers=FAST)
    with pytest.raises(openai_vtab.InternalServerError):
        db.execute("SELECT count(*) FROM job_checkpoints(?)", (job,)).fetchall()
    assert [r.params.get("after") is not None for r in api.requests] == [False, True, True, True]


def test_one_failing_key_of_an_in_list_fails_the_statement(api: FakeOpenAI, db: apsw.Connection) -> None:
    good, bad = job_with(api, 2), job_with(api, 2)
    api.fail(500, times=10, match=bad, headers=FAST)
    with pytest.raises(openai_vtab.InternalServerError, match=bad):
        db.execute("SELECT count(*) FROM job_checkpoints WHERE fine_tuning_job_id IN (?, ?)", (good, bad)).fetchall()


def test_an_unknown_key_in_an_in_list_stays_a_warning(api: FakeOpenAI, db: apsw.Connection) -> None:
    good = job_with(api, 2)
    with pytest.warns(openai_vtab.UnknownKeyWarning, match="ftjob-gone"):
        rows = db.execute(
            "SELECT count(*) FROM job_checkpoints WHERE fine_tuning_job_id IN (?, 'ftjob-gone')", (good,)
        ).fetchall()
    assert rows == [(2,)]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("repeat-cursor", "repeated the cursor"),
        ("empty-has-more", "said has_more=true but sent no data"),
    ],
)
def test_a_server_that_never_ends_paging_is_stopped(
    api: FakeOpenAI, db: apsw.Connection, kind: str, message: str
) -> None:
    job = job_with(api, 150)
    api.inject(kind, times=1000)
    with pytest.raises(openai_vtab.PaginationError, match=message):
        db.execute("SELECT count(*) FROM job_checkpoints(?)", (job,)).fetchall()
    assert len(api.requests) <= 2


def test_more_pages_than_the_cap_is_stopped(
    api: FakeOpenAI, db: apsw.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "MAX_PAGES", 3)
    job = job_with(api, 500)
    with pytest.raises(openai_vtab.PaginationError, match="passed 3 pages"):
        db.execute("SELECT count(*) FROM job_checkpoints(?)", (job,)).fetchall()
    assert len(api.requests) == 3


@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        ("not-json", openai_vtab.APIResponseValidationError, "answered 200 with a body that is not JSON"),
        ("no-data", openai_vtab.APIResponseValidationError, "is not an object with a 'data' list"),
        ("item-without-id", openai_vtab.APIResponseValidationError, r"has an item without a string 'id' at data\[0\]"),
    ],
)
def test_broken_bodies_give_an_api_error_naming_the_endpoint(
    api: FakeOpenAI, db: apsw.Connection, kind: str, error: type[Exception], message: str
) -> None:
    job = job_with(api, 3)
    api.inject(kind)
    with pytest.raises(error, match=message) as caught:
        db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    assert f"GET /fine_tuning/jobs/{job}/checkpoints" in str(caught.value)
    assert isinstance(caught.value, openai_vtab.APIError)


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("not-json", openai_vtab.APIResponseValidationError),
        ("no-data", openai_vtab.APIResponseValidationError),
        ("item-without-id", openai_vtab.APIResponseValidationError),
        ("empty-has-more", openai_vtab.PaginationError),
        ("repeat-cursor", openai_vtab.PaginationError),
    ],
)
def test_a_broken_answer_is_not_cached(api: FakeOpenAI, db: apsw.Connection, kind: str, error: type[Exception]) -> None:
    job = job_with(api, 150)
    api.inject(kind, times=2)
    with pytest.raises(error):
        db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    api.clear()  # the server is fine again: trying again must ask it, not replay the broken answer
    assert db.execute("SELECT count(*) FROM job_checkpoints(?)", (job,)).fetchone() == (150,)
    assert api.requests


def test_a_body_that_breaks_off_is_retried(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 3)
    api.inject("truncated")
    assert db.execute("SELECT count(*) FROM job_checkpoints(?)", (job,)).fetchone() == (3,)
    assert len(api.requests) == 2
    assert log(db) == [(200, 2, 0, None)]


def test_a_body_that_keeps_breaking_off_fails_clearly(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 3)
    api.inject("truncated", times=10)
    message = r"broke off before the whole answer arrived \(IncompleteRead\(.*\)\), 3 attempt\(s\); nothing partial"
    with pytest.raises(openai_vtab.APIConnectionError, match=message):
        db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    assert len(api.requests) == 3


def test_a_404_on_a_later_page_fails_instead_of_looking_complete(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 250)
    api.fail(404, skip=1)
    with pytest.raises(openai_vtab.NotFoundError, match="HTTP 404"):
        db.execute("SELECT count(*) FROM job_checkpoints(?)", (job,)).fetchall()


def test_a_wrong_base_url_fails_on_keyed_tables_too(api: FakeOpenAI, connect: Connect) -> None:
    job = job_with(api, 2)
    db = connect(base_url=api.base_url.removesuffix("/v1"))
    with pytest.raises(openai_vtab.NotFoundError, match="Invalid URL"):
        db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()


def test_a_404_without_the_apis_error_envelope_fails(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 2)
    api.inject("status", status=404, body=b"<html><body>404 Not Found</body></html>")
    with pytest.raises(openai_vtab.NotFoundError):
        db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()


def test_interrupt_stops_a_long_fetch(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 1)
    api.inject("hang", seconds=10)
    threading.Timer(0.3, db.interrupt).start()
    started = time.monotonic()
    with pytest.raises(apsw.InterruptError):
        db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    assert time.monotonic() - started < 3
    # The connection is usable again right away.
    assert db.execute("SELECT 1").fetchone() == (1,)


# -- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "described"), [(42, "an integer 42"), (4.5, "a real 4.5"), (b"\x00ftjob", "a blob")])
def test_keys_of_the_wrong_type_give_a_clear_error(
    api: FakeOpenAI, db: apsw.Connection, value: object, described: str
) -> None:
    with pytest.raises(openai_vtab.InvalidKeyError, match=f"fine_tuning_job_id must be text .* not {described}"):
        db.execute("SELECT * FROM job_checkpoints WHERE fine_tuning_job_id = ?", (value,)).fetchall()
    assert api.requests == []


def test_a_wrong_type_key_from_a_joined_table_gives_a_clear_error(api: FakeOpenAI, db: apsw.Connection) -> None:
    db.execute("CREATE TABLE runs(job INTEGER); INSERT INTO runs VALUES (7)")
    with pytest.raises(openai_vtab.InvalidKeyError, match="CAST it AS TEXT"):
        db.execute("SELECT * FROM runs r JOIN job_checkpoints c ON c.fine_tuning_job_id = r.job").fetchall()


@pytest.mark.parametrize("value", ["", ".", "..", "x" * 10_000], ids=["empty", "dot", "dot-dot", "10k-chars"])
def test_empty_and_huge_keys_give_no_rows_a_warning_and_no_request(
    api: FakeOpenAI, db: apsw.Connection, value: str
) -> None:
    with pytest.warns(openai_vtab.UnknownKeyWarning, match=r"no id is empty, '\.', '\.\.' or longer than 512"):
        assert db.execute("SELECT * FROM job_checkpoints(?)", (value,)).fetchall() == []
    assert api.requests == []


KEYS = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=40),
    st.sampled_from(["ftjob-known", "../../models", "a/b?c=d#e", "%2e%2e", "x\r\nX-Evil: 1", "' OR 1=1 --"]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.binary(max_size=8),
    st.none(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=KEYS)
def test_any_value_as_a_key_gives_right_rows_or_our_error(api: FakeOpenAI, connect: Connect, key: object) -> None:
    if "ftjob-known" not in api.state.jobs:
        api.add_job(id="ftjob-known")
        api.add_checkpoints("ftjob-known", 3)
    api.clear()
    db = connect(cache_ttl=0)
    expected = len(api.state.checkpoints.get(key, [])) if isinstance(key, str) else 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", openai_vtab.UnknownKeyWarning)
        try:
            rows = db.execute("SELECT fine_tuning_job_id FROM job_checkpoints WHERE fine_tuning_job_id = ?", (key,))
            rows = rows.fetchall()
        except openai_vtab.InvalidKeyError:
            assert not isinstance(key, str) and key is not None
            return
    assert rows == [(key,)] * expected
    for request in api.requests:  # whatever the key held, it reached exactly its own route
        assert (request.route, request.keys, request.params) == ("checkpoints", (key,), {"limit": "100"})
        assert "x-evil" not in request.headers


# -- secrets ------------------------------------------------------------------------------------------

SECRET = "sk-test-this-key-must-never-show-0123456789"


def test_rejected_key_is_named_by_source_and_masked(api: FakeOpenAI, connect: Connect) -> None:
    db = connect(api_key=SECRET)
    with pytest.raises(openai_vtab.AuthenticationError) as caught:
        db.execute("SELECT * FROM fine_tuning_jobs").fetchall()
    message = str(caught.value)
    assert "the key from register(api_key=...) (sk-...6789) was rejected" in message
    assert SECRET not in message  # the fake echoes the whole key back in its error; it must be masked
    assert SECRET not in repr(caught.value) and SECRET not in str(caught.value.args)
    assert all(SECRET not in str(row) for row in db.execute("SELECT * FROM openai_requests"))


def test_the_key_appears_nowhere_a_user_can_see(api: FakeOpenAI, connect: Connect, tmp_path: Path) -> None:
    job = job_with(api, 2)
    api.api_key = SECRET
    path = tmp_path / "file.db"
    db = apsw.Connection(str(path))
    registration = openai_vtab.register(db, api_key=SECRET, base_url=api.base_url)
    with pytest.warns(openai_vtab.UnknownKeyWarning) as caught:
        db.execute("SELECT * FROM job_checkpoints('ftjob-nope')").fetchall()
    db.execute("CREATE TABLE snap AS SELECT * FROM job_checkpoints(?)", (job,))
    api.fail(500, times=5, headers=FAST)
    with pytest.raises(openai_vtab.InternalServerError) as failed:
        db.execute("SELECT * FROM fine_tuning_jobs").fetchall()
    seen = [
        repr(registration),
        repr(registration.config),
        str(registration.config.describe()),
        str(failed.value),
        *(str(w.message) for w in caught),
        *(str(row) for row in db.execute("SELECT * FROM openai_requests")),
    ]
    db.close()
    assert all(SECRET not in text for text in seen)
    assert SECRET.encode() not in path.read_bytes()


def test_forbidden_names_the_organization_and_project(api: FakeOpenAI, connect: Connect) -> None:
    api.organization = "org-right"
    db = connect(organization="org-wrong", project="proj_x")
    with pytest.raises(openai_vtab.PermissionDeniedError, match="organization org-wrong and project proj_x"):
        db.execute("SELECT * FROM fine_tuning_jobs").fetchall()


@pytest.fixture
def tls_api(tmp_path: Path) -> tuple[FakeOpenAI, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    api = FakeOpenAI(tls=context).start()
    yield api, cert
    api.stop()


def test_tls_is_verified_and_requests_ca_bundle_is_honoured(
    tls_api: tuple[FakeOpenAI, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, cert = tls_api
    job = job_with(api, 2)
    db = apsw.Connection(":memory:")
    openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url, max_retries=0)
    with pytest.raises(
        openai_vtab.APIConnectionError,
        match=r"TLS certificate of 127\.0\.0\.1:\d+ could not be verified .*REQUESTS_CA_BUNDLE",
    ):
        db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    db = apsw.Connection(":memory:")
    openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url)
    assert db.execute("SELECT count(*) FROM job_checkpoints(?)", (job,)).fetchone() == (2,)


def test_two_connections_in_two_threads_never_mix(api: FakeOpenAI) -> None:
    other = FakeOpenAI(api_key="sk-test-other-organization-key", organization="org-other").start()
    try:
        mine = {job_with(api, 3, id=f"ftjob-mine-{n}") for n in range(4)}
        theirs = {job_with(other, 5, id=f"ftjob-theirs-{n}") for n in range(4)}
        results: dict[str, set[tuple[str, int]]] = {}
        errors: list[BaseException] = []

        def run(name: str, fake: FakeOpenAI, organization: str | None) -> None:
            try:
                db = apsw.Connection(":memory:")
                openai_vtab.register(db, api_key=fake.api_key, base_url=fake.base_url, organization=organization)
                seen: set[tuple[str, int]] = set()
                for _ in range(10):
                    rows = db.execute(
                        "SELECT j.id, count(c.id) FROM fine_tuning_jobs j "
                        "JOIN job_checkpoints c ON c.fine_tuning_job_id = j.id GROUP BY j.id"
                    )
                    seen |= set(rows)
                    db.execute("SELECT openai_clear_cache()")
                results[name] = seen
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=run, args=("mine", api, None)),
            threading.Thread(target=run, args=("theirs", other, "org-other")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert results == {"mine": {(j, 3) for j in mine}, "theirs": {(j, 5) for j in theirs}}
        assert {r.headers["authorization"] for r in api.requests} == {f"Bearer {api.api_key}"}
        assert {r.headers.get("openai-organization") for r in other.requests} == {"org-other"}
    finally:
        other.stop()


def test_the_first_retry_backs_off_half_a_second_then_doubles() -> None:
    from urllib3.util.retry import RequestHistory

    def after(failures: int) -> float:
        history = tuple(RequestHistory("GET", "/", None, 503, None) for _ in range(failures))
        return _Retry(total=10, history=history).get_backoff_time()

    assert after(0) == 0.0
    for failures, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]:
        assert base <= after(failures) <= base + 0.25


def test_a_5xx_asking_for_too_long_a_wait_says_so(api: FakeOpenAI, db: apsw.Connection) -> None:
    job = job_with(api, 1)
    api.fail(503, times=5, headers={"Retry-After": "120"})
    with pytest.raises(openai_vtab.InternalServerError, match="the server asked to wait 120 s, longer than the 30 s"):
        db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    assert len(api.requests) == 1


def test_the_attempt_count_in_messages_is_the_real_one(api: FakeOpenAI, connect: Connect) -> None:
    job = job_with(api, 1)
    api.fail(503, times=1, headers=FAST)
    api.fail(400, times=1)
    with pytest.raises(openai_vtab.BadRequestError):
        connect(max_retries=5).execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    api.fail(503, times=2, headers=FAST)
    api.fail(502, times=2)
    with pytest.raises(openai_vtab.InternalServerError, match=r"gave up after 4 attempt\(s\)"):
        connect(max_retries=3).execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()


@pytest.mark.parametrize("fault", ["hang", "status"])
def test_no_exception_carries_the_key_along(api: FakeOpenAI, connect: Connect, fault: str) -> None:
    job = job_with(api, 1)
    api.api_key = SECRET
    db = connect(api_key=SECRET, timeout=0.2, max_retries=0)
    if fault == "hang":
        api.inject("hang", seconds=2)
    else:
        api.fail(500, headers=FAST)
    with pytest.raises(openai_vtab.APIError) as caught:
        db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    error: BaseException | None = caught.value
    while error is not None:  # requests' own exceptions hold the request and its Authorization header
        assert SECRET not in repr(vars(error)) and SECRET not in str(error.args)
        error = error.__cause__ or error.__context__
    for frame, _ in traceback.walk_tb(caught.tb):
        assert all(SECRET not in repr(value) for value in frame.f_locals.values()), frame.f_code.co_name


def test_a_proxy_never_sees_requests_for_this_machine(
    api: FakeOpenAI, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = job_with(api, 2)
    with FakeOpenAI(api_key=None) as proxy:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert connect().execute("SELECT count(*) FROM job_checkpoints(?)", (job,)).fetchone() == (2,)
        assert proxy.requests == []


def test_an_interrupted_fetch_does_not_hold_up_the_next_query(api: FakeOpenAI, connect: Connect) -> None:
    slow, quick = job_with(api, 1), job_with(api, 1)
    db = connect(max_workers=1)
    api.inject("hang", seconds=5, match=slow)
    threading.Timer(0.2, db.interrupt).start()
    with pytest.raises(apsw.InterruptError):
        db.execute("SELECT * FROM job_checkpoints(?)", (slow,)).fetchall()
    started = time.monotonic()
    assert db.execute("SELECT count(*) FROM job_checkpoints(?)", (quick,)).fetchone() == (1,)
    assert time.monotonic() - started < 2  # not stuck behind the abandoned request on the one worker


def test_an_interrupt_cuts_retry_sleeps_short(api: FakeOpenAI, connect: Connect) -> None:
    job = job_with(api, 1)
    db = connect()
    api.fail(503, times=3, headers={"Retry-After": "20"})
    before = set(threading.enumerate())
    threading.Timer(0.2, db.interrupt).start()
    with pytest.raises(apsw.InterruptError):
        db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    time.sleep(1)
    # The worker was asleep for a 20 s Retry-After: woken by the interrupt, it has given up and ended.
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("openai-vtab")]
    assert len(api.requests) == 1
