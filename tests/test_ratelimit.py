"""Concurrency that follows the rate limit: the limiter learns from the API's x-ratelimit-* headers and 429s.

Against the fake's token bucket (``FakeOpenAI(rate_limit=...)``) and its injected 429s, over real HTTP. The
tests pin counts (429s, requests, requests in flight at the fake, the limiter's state), never times.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator

import apsw
import pytest
import requests

import openai_vtab
from openai_vtab.ratelimit import AbandonedError, RateLimiter, parse_duration, retry_after
from openai_vtab.testing import FakeOpenAI
from openai_vtab.testing.ratelimit import TokenBucket, format_duration

Connect = Callable[..., apsw.Connection]
FAST = {"retry-after-ms": "5"}


def jobs(api: FakeOpenAI, count: int) -> list[str]:
    ids = [api.add_job()["id"] for _ in range(count)]
    for job in ids:
        api.add_checkpoints(job, 1)
    return ids


def rows_of(db: apsw.Connection, keys: list[str]) -> int:
    marks = ", ".join("?" * len(keys))
    sql = f"SELECT count(*) FROM job_checkpoints WHERE fine_tuning_job_id IN ({marks})"
    return db.execute(sql, keys).fetchone()[0]


def limiter_of(registration: openai_vtab.Registration) -> RateLimiter:
    return registration.client.rate_limiter(registration.config.credential())


@pytest.fixture
def limited() -> Iterator[FakeOpenAI]:
    """A fake API that allows 20 requests a second (a bucket of 20 that refills in one second)."""
    with FakeOpenAI(rate_limit=20) as fake:
        yield fake


# -- the test ---------------------------------------------------------------------------------


def test_an_in_over_64_keys_against_20_per_second_meets_no_429(limited: FakeOpenAI) -> None:
    keys = jobs(limited, 64)
    limited.rate_limit = 20  # a full bucket, whatever adding the jobs took
    db = apsw.Connection(":memory:")
    registration = openai_vtab.register(db, api_key=limited.api_key, base_url=limited.base_url)
    assert rows_of(db, keys) == 64
    # Zero 429s, not merely none left after retries: the first answer's headers arrive while the bucket still
    # holds 20 - 8 tokens, and from then on a request starts only when the limiter's bucket, which never holds
    # more than the server's, has a token for it.
    assert limited.rate_limited == 0
    assert len(limited.requests) == 64
    assert db.execute("SELECT count(*), sum(attempts), count(error) FROM openai_requests").fetchone() == (64, 64, 0)
    assert {status for (status,) in db.execute("SELECT status FROM openai_requests")} == {200}
    # The pace it learned from the headers: at least 95% of the bucket's 20 a second, never above it.
    rate = limiter_of(registration).rate
    assert rate is not None and 19 <= rate <= 20


def test_without_rate_headers_429s_alone_get_the_same_in_through(
    limited: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that sends no x-ratelimit-* headers (the limiter reads none): the bucket refuses, and the 429s'
    pauses and halvings still get every key through, where retrying 8 workers into the wall gives up."""
    keys = jobs(limited, 64)
    limited.rate_limit = 20
    monkeypatch.setattr(RateLimiter, "_learn", lambda *args, **kwargs: None)
    db = apsw.Connection(":memory:")
    openai_vtab.register(db, api_key=limited.api_key, base_url=limited.base_url, max_retries=10)
    assert rows_of(db, keys) == 64
    assert limited.rate_limited > 0


# -- 429s lower the concurrency, successes raise it again ---------------------------------------------


def test_a_429_storm_lowers_concurrency_and_it_climbs_back(api: FakeOpenAI) -> None:
    first, second, bulk, last = (jobs(api, n) for n in (8, 8, 40, 8))
    db = apsw.Connection(":memory:")
    registration = openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url, max_retries=30)
    limiter = limiter_of(registration)

    api.fail(429, times=24, headers=FAST)
    assert rows_of(db, first) == 8  # every key got through the storm
    assert limiter.limit < 8

    api.clear()
    api.latency = 0.3  # long enough for every request the limiter allows to overlap at the fake
    assert rows_of(db, second) == 8
    lowered = api.max_in_flight
    assert lowered < 8 and lowered <= math.floor(limiter.limit)

    api.latency = 0.0
    assert rows_of(db, bulk) == 40  # answers without 429s raise the limit by 1/limit each
    assert limiter.limit == 8  # back at the ceiling (max_workers), never above it

    api.clear()
    api.latency = 0.3
    assert rows_of(db, last) == 8
    assert api.max_in_flight > lowered
    assert db.execute("SELECT count(error) FROM openai_requests").fetchone() == (0,)


def test_one_round_of_429s_halves_the_limit_once() -> None:
    limiter = RateLimiter(8, max_pause=30)

    def round_of_429s(in_flight: int) -> None:
        slots = [limiter.acquire() for _ in range(in_flight)]
        for slot in slots:
            slot.release(429, {})

    round_of_429s(8)
    assert limiter.limit == 4  # eight answers to one round: one halving, not eight
    round_of_429s(4)
    assert limiter.limit == 2
    round_of_429s(1)
    round_of_429s(1)
    assert limiter.limit == 1  # never below one
    limiter.acquire().release(200, {})
    assert limiter.limit == 2
    for _ in range(3):
        limiter.acquire().release(200, {})
    assert math.floor(limiter.limit) == 3  # slowly: one more per round of answers (2 + 1/2 + 1/2.5 + 1/2.9)
    for _ in range(100):
        limiter.acquire().release(200, {})
    assert limiter.limit == 8


def test_a_429_halves_what_was_in_flight() -> None:
    """As TCP halves its flight size: two requests meeting a 429 leave room for one, not for half the ceiling."""
    limiter = RateLimiter(8, max_pause=30)
    first, second = limiter.acquire(), limiter.acquire()
    first.release(429, {})
    first.release(429, {})  # handed back twice: counted once
    second.release(429, {})  # started in the same round as the first: no second halving
    assert limiter.limit == 1


def test_a_lowered_limit_does_not_wait_for_an_abandoned_query(api: FakeOpenAI, connect: Connect) -> None:
    slow, quick = jobs(api, 2)
    db = connect(max_retries=30)
    api.fail(429, times=6, headers=FAST)
    assert rows_of(db, [quick]) == 1
    api.inject("hang", seconds=5, match=slow)
    threading.Timer(0.3, db.interrupt).start()
    with pytest.raises(apsw.InterruptError):
        db.execute("SELECT * FROM job_checkpoints(?)", (slow,)).fetchall()
    api.clear()
    # The limit is 1 or 2 and the hung request still holds its slot; its query is gone, so it does not count.
    assert db.execute("SELECT count(*) FROM job_checkpoints(?)", (quick,)).fetchone() == (1,)


def test_one_limiter_per_key_and_registration_with_max_workers_as_its_ceiling(api: FakeOpenAI) -> None:
    def register(**options: object) -> openai_vtab.Registration:
        return openai_vtab.register(apsw.Connection(":memory:"), api_key=api.api_key, base_url=api.base_url, **options)

    registration = register(admin_api_key="sk-test-admin-0000000000000000", max_workers=3)
    config, client = registration.config, registration.client
    user = client.rate_limiter(config.credential())
    assert client.rate_limiter(config.credential()) is user  # every worker thread, every table
    assert client.rate_limiter(config.credential(admin=True)) is not user  # the admin key has its own account
    assert (user.ceiling, user.limit) == (3, 3)
    other = register()
    assert other.client.rate_limiter(other.config.credential()) is not user


def test_an_abandoned_query_stops_waiting_for_a_slot() -> None:
    abandoned = threading.Event()
    abandoned.set()
    with pytest.raises(AbandonedError):
        RateLimiter(8, max_pause=30).acquire(abandoned)


# -- headers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1.5s", 1.5),
        ("1h2m3s", 3723.0),
        ("2m30.5s", 150.5),
        ("0s", 0.0),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("500ns", 5e-7),
        (".5s", 0.5),
        ("2", 2.0),
        (" 7ms ", 0.007),
    ],
)
def test_reset_durations_are_read_in_every_format(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "", "soon", "1x", "-1s", "1s2", "s", "1.2.3s", "nan", "inf", "-3", "1 s"])
def test_an_unreadable_duration_is_none(text: str | None) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"Retry-After-Ms": "250"}, 0.25),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "soon", "Retry-After": "2"}, 2.0),
        ({"retry-after-ms": "nan"}, None),
        ({"Retry-After": "whenever"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_in_any_letter_case(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(headers) == seconds


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-ratelimit-limit-requests": "lots", "x-ratelimit-remaining-requests": "-1"},
        {"x-ratelimit-remaining-requests": "1e3", "x-ratelimit-reset-requests": "soon"},
        {"x-ratelimit-limit-requests": "", "x-ratelimit-remaining-requests": "", "x-ratelimit-reset-requests": ""},
    ],
)
def test_missing_or_garbled_rate_headers_teach_nothing(headers: dict[str, str]) -> None:
    limiter = RateLimiter(8, max_pause=30)
    limiter.acquire().release(200, headers)
    assert (limiter.tokens, limiter.rate, limiter.limit) == (None, None, 8)


def test_the_headers_are_read_whatever_their_letter_case() -> None:
    limiter = RateLimiter(8, max_pause=30)
    headers = {"X-RateLimit-Limit-Requests": "100", "X-RateLimit-Remaining-Requests": "10"}
    limiter.acquire().release(200, {**headers, "X-RateLimit-Reset-Requests": "9s"})
    assert limiter.rate == pytest.approx(89 / 9)
    tokens = limiter.tokens
    assert tokens is not None and 10 <= tokens < 11


def test_garbled_headers_on_the_wire_are_no_error(api: FakeOpenAI, db: apsw.Connection) -> None:
    [job] = jobs(api, 1)
    garbled = {
        "retry-after-ms": "soon",
        "Retry-After": "whenever",
        "x-ratelimit-limit-requests": "many",
        "x-ratelimit-remaining-requests": "few",
        "x-ratelimit-reset-requests": "later",
    }
    api.fail(429, headers=garbled)
    assert db.execute("SELECT count(*) FROM job_checkpoints(?)", (job,)).fetchone() == (1,)
    assert db.execute("SELECT status, attempts, error FROM openai_requests").fetchall() == [(200, 2, None)]


# -- the fake's bucket --------------------------------------------------------------------------------


def test_the_fake_answers_like_the_api_near_and_at_its_rate_limit() -> None:
    with FakeOpenAI(rate_limit=0.1) as api:  # one token, the next in ten seconds
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {api.api_key}"
        granted = session.get(f"{api.base_url}/models")
        refused = session.get(f"{api.base_url}/models")
    assert granted.status_code == 200
    assert granted.headers["x-ratelimit-limit-requests"] == "1"
    assert granted.headers["x-ratelimit-remaining-requests"] == "0"
    assert parse_duration(granted.headers["x-ratelimit-reset-requests"]) == pytest.approx(10, abs=0.1)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert error["message"].startswith("Rate limit reached in organization org-fake on requests per second")
    assert retry_after(refused.headers) == pytest.approx(10, abs=0.1)
    assert refused.headers["retry-after"] == "10"
    assert api.rate_limited == 1 and len(api.requests) == 2  # refused requests are logged too


def test_the_fake_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(20, clock=lambda: now[0])
    answers = [bucket.take() for _ in range(21)]
    assert [granted for granted, _, _ in answers] == [True] * 20 + [False]
    assert [h["x-ratelimit-remaining-requests"] for _, h, _ in answers[:3]] == ["19", "18", "17"]
    assert answers[0][1]["x-ratelimit-reset-requests"] == "50ms"
    assert answers[-1][1]["x-ratelimit-reset-requests"] == "1s"
    assert answers[-1][2] == pytest.approx(0.05)
    now[0] = 0.1
    assert [bucket.take()[0] for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.02, "20ms"), (0.0501, "51ms"), (1, "1s"), (1.5, "1.5s"), (360, "6m0s"), (61.25, "1m1.25s")]
)
def test_the_fake_writes_durations_as_the_api_does(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(math.ceil(seconds * 1000) / 1000)


def test_a_bucket_smaller_than_max_workers_costs_only_the_first_round() -> None:
    """5 requests a second, in a bucket of 5, and 8 workers: before any answer says how big the bucket is, the first
    round of 8 goes out and 3 of it are refused. From the first answers on, requests go at the bucket's pace: no
    more 429s, and no token of the limit left unspent while keys wait (a stall waiting for the reset time did)."""
    with FakeOpenAI(rate_limit=5, latency=0.05) as api:
        keys = jobs(api, 16)
        db = apsw.Connection(":memory:")
        registration = openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url)
        api.rate_limit = 5  # a full bucket, whatever adding the jobs took
        assert rows_of(db, keys) == 16
        assert api.rate_limited <= 8 - 5
        # A stall waiting for the reset time left 7 tokens unspent; the margin is for a loaded machine's pauses.
        assert api.unused_tokens < 3
    # A 429 teaches where the bucket is, not how fast it refills: the rate learned stays, and it is the bucket's.
    assert limiter_of(registration).rate == 5


def test_the_first_rounds_answers_put_the_bucket_where_the_server_has_it() -> None:
    """The answers of a first round of 8 against a bucket of 5, as the server sends them, the 429s first."""
    now = [0.0]
    limiter = RateLimiter(8, max_pause=30, clock=lambda: now[0])
    slots = [limiter.acquire() for _ in range(8)]
    bucket = {"x-ratelimit-limit-requests": "5"}
    for slot in slots[5:]:
        empty = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s", "retry-after-ms": "200"}
        slot.release(429, {**bucket, **empty})
    for left, slot in zip([4, 3, 2, 1, 0], slots[:5], strict=True):
        slot.release(
            200,
            {**bucket, "x-ratelimit-remaining-requests": str(left), "x-ratelimit-reset-requests": f"{(5 - left) / 5}s"},
        )
    # Full but for one request, the bucket refills that one in 200 ms: 5 a second exactly, and the 429s kept it.
    assert limiter.rate == 5
    # Empty, as the server has it: the refused three spent nothing, and the first answer came after the server had
    # counted every other request (not 7 below, as if each request in flight had yet to be counted).
    assert limiter.tokens == 0
