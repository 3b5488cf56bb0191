"""What queries cost: requests sent and wall time, against the fake API with injected latency.

    python benchmarks/run.py            # a few minutes
    python benchmarks/run.py --quick    # fewer repetitions and rows, for a smoke run

The fake API runs in a child process on 127.0.0.1 (as a real server would be: its work does not share this
process's GIL or memory) and answers every request after ``--latency`` seconds (default 0.1). Each scenario
is timed for openai_vtab and, over exactly the same pages, for a plain ``requests`` loop and for the official
``openai`` SDK's auto-paging loop (skipped if the SDK is not installed). Ratios are against those, measured in
the same run, and against the one-by-one floor: (requests a one-by-one client must send) x latency.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import apsw
import requests

import openai_vtab
from openai_vtab.archiving import archive
from openai_vtab.demo import populate
from openai_vtab.testing import FakeOpenAI

try:
    import openai
except ImportError:  # the SDK column is optional
    openai = None

JOBS = 32
ROWS_PER_JOB = 3
RATE_LIMITS = (20, 5)  # requests a second, for the rate-limited IN: a bucket above max_workers, and one below
RATE_KEYS = 64
# The issue's join table: 16 succeeded jobs (among as many failed ones) whose responses take 300 ms each.
JOIN_JOBS = 16
JOIN_LATENCY = 0.3
BIG_JOB = "ftjob-big"
HUGE_JOB = "ftjob-huge"


def _serve(pipe: Any, latency: float, huge: int, data: str) -> None:
    """Child process: a populated fake API (the benchmark's jobs, the join jobs, or the demo organization) until told
    to stop."""
    api = FakeOpenAI(latency=latency)
    if data == "demo":
        populate(api)
    elif data == "joins":
        for n in range(JOIN_JOBS):
            for status in ("succeeded", "failed"):
                job = api.add_job(id=f"ftjob-{status}-{n:02d}", status=status)
                api.add_checkpoints(job["id"], ROWS_PER_JOB)
                api.add_event(job["id"], "done")
    else:
        for n in range(JOBS):
            job = api.add_job(id=f"ftjob-bench-{n:02d}")
            api.add_checkpoints(job["id"], ROWS_PER_JOB)
        api.add_job(id=BIG_JOB)
        api.add_checkpoints(BIG_JOB, 2_500)
    if huge:
        api.add_job(id=HUGE_JOB)
        api.add_checkpoints(HUGE_JOB, huge)
    api.start()
    pipe.send((api.base_url, api.api_key))
    while True:
        command = pipe.recv()
        if command == "stop":
            break
        api.latency = command
        pipe.send("ok")
    api.stop()


@contextmanager
def fake_api(latency: float, huge: int = 0, data: str = "bench") -> Iterator[tuple[str, str, Callable[[float], None]]]:
    """(base_url, api_key, set_latency) of a fake API in a child process; ``data``: bench, joins or demo."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_serve, args=(child, latency, huge, data), daemon=True)
    process.start()
    base_url, key = parent.recv()

    def set_latency(seconds: float) -> None:
        parent.send(seconds)
        parent.recv()

    try:
        yield base_url, key, set_latency
    finally:
        parent.send("stop")
        process.join(10)


def _serve_limited(pipe: Any, latency: float, rate: float) -> None:
    """Child process: RATE_KEYS jobs behind a bucket of ``rate``; "fill" refills it and answers the 429s so far."""
    api = FakeOpenAI(latency=latency)
    for n in range(RATE_KEYS):
        api.add_checkpoints(api.add_job(id=f"ftjob-rate-{n:02d}")["id"], 1)
    api.start()
    pipe.send((api.base_url, api.api_key))
    while pipe.recv() == "fill":
        pipe.send(api.rate_limited)
        api.clear()
        api.rate_limit = rate
    api.stop()


def rate_limited_in(rate: float, latency: float, repeat: int) -> tuple[int, int, float]:
    """(requests sent, 429s the fake answered, median seconds) of an IN over RATE_KEYS keys against a limit of
    ``rate`` requests a second, each run on a new connection and a full bucket."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_serve_limited, args=(child, latency, rate), daemon=True)
    process.start()
    base_url, key = parent.recv()
    in_list = ", ".join(f"'ftjob-rate-{n:02d}'" for n in range(RATE_KEYS))
    runs: list[tuple[int, int, float]] = []
    try:
        for _ in range(repeat):
            parent.send("fill")
            parent.recv()
            db = apsw.Connection(":memory:")
            openai_vtab.register(db, api_key=key, base_url=base_url)
            requests_sent, seconds = sent(db, f"SELECT * FROM job_checkpoints WHERE fine_tuning_job_id IN ({in_list})")
            parent.send("fill")
            runs.append((requests_sent, parent.recv(), seconds))
    finally:
        parent.send("stop")
        process.join(10)
    return runs[-1][0], max(r[1] for r in runs), statistics.median(r[2] for r in runs)


def job_ids() -> list[str]:
    return [f"ftjob-bench-{n:02d}" for n in range(JOBS)]


class Raw:
    """The throwaway script: a requests loop, one job after another, following ``after``."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"

    def checkpoints(self, job: str, limit: int = 100, pages: int | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": limit}
        while True:
            body = self.session.get(f"{self.base_url}/fine_tuning/jobs/{job}/checkpoints", params=params).json()
            items += body["data"]
            if not body["has_more"] or not body["data"] or (pages is not None and (pages := pages - 1) == 0):
                return items
            params["after"] = body["data"][-1]["id"]

    def rows(self, job: str, row: Callable[[dict[str, Any]], tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Every checkpoint of ``job`` as the tuple ``row`` builds, page by page, as a script would."""
        rows: list[tuple[Any, ...]] = []
        params: dict[str, Any] = {"limit": 100}
        url = f"{self.base_url}/fine_tuning/jobs/{job}/checkpoints"
        while True:
            body = self.session.get(url, params=params).json()
            data = body["data"]
            rows += [row(item) for item in data]
            if not body["has_more"] or not data:
                return rows
            params["after"] = data[-1]["id"]


def every_column(item: dict[str, Any]) -> tuple[Any, ...]:
    """What ``SELECT *`` gives, as a script builds it; ``metrics`` stays the parsed dict (a script has no use for
    its JSON text, which the table must write)."""
    metrics = item.get("metrics") or {}
    return (
        item["id"],
        item["created_at"],
        item["fine_tuned_model_checkpoint"],
        item["step_number"],
        item["metrics"],
        item["object"],
        metrics.get("train_loss"),
        metrics.get("train_mean_token_accuracy"),
        metrics.get("valid_loss"),
        metrics.get("valid_mean_token_accuracy"),
        metrics.get("full_valid_loss"),
        metrics.get("full_valid_mean_token_accuracy"),
    )


def three_columns(item: dict[str, Any]) -> tuple[Any, ...]:
    """What ``SELECT step_number, train_loss, full_valid_loss`` gives, as a script builds it."""
    metrics = item.get("metrics") or {}
    return (item["step_number"], metrics.get("train_loss"), metrics.get("full_valid_loss"))


class SDK:
    """The official SDK's auto-paging iterator, one job after another."""

    def __init__(self, base_url: str, key: str) -> None:
        self.client = openai.OpenAI(api_key=key, base_url=base_url, max_retries=0)

    def checkpoints(self, job: str, limit: int = 100, pages: int | None = None) -> list[Any]:
        page = self.client.fine_tuning.jobs.checkpoints.list(job, limit=limit)
        return list(page.data) if pages == 1 else list(page)


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    floor: float
    sdk: float | None
    raw: float


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time of ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def connection(base_url: str, key: str, **options: Any) -> apsw.Connection:
    db = apsw.Connection(":memory:", statementcachesize=0)
    openai_vtab.register(db, api_key=key, base_url=base_url, **options)
    db.execute("CREATE TABLE my_jobs(id TEXT)")
    db.executemany("INSERT INTO my_jobs VALUES (?)", [(j,) for j in job_ids()])
    db.execute("CREATE TABLE my_runs(id TEXT)")
    db.executemany("INSERT INTO my_runs VALUES (?)", [(j,) for j in job_ids() for _ in range(3)])
    return db


def sent(db: apsw.Connection, sql: str, args: tuple[Any, ...] = ()) -> tuple[int, float]:
    """(requests sent, seconds) for one run of ``sql``."""
    db.execute("DELETE FROM openai_requests")
    started = time.perf_counter()
    db.execute(sql, args).fetchall()
    seconds = time.perf_counter() - started
    return db.execute("SELECT count(*) FROM openai_requests WHERE NOT cached").fetchone()[0], seconds


def network_scenarios(base_url: str, key: str, latency: float, repeat: int) -> list[Result]:
    raw, sdk = Raw(base_url, key), SDK(base_url, key) if openai else None
    jobs = job_ids()
    in_list = ", ".join(f"'{j}'" for j in jobs)
    scenarios: list[tuple[str, str, tuple[Any, ...], int, Callable[[Any], Any], bool]] = [
        # name, SQL, args, requests one by one, the same fetch by hand, reuse one connection (cache)
        (
            "one job, full scan (2,500 rows)",
            "SELECT * FROM job_checkpoints(?)",
            (BIG_JOB,),
            25,
            lambda c: c.checkpoints(BIG_JOB),
            False,
        ),
        (
            "LIMIT 5 on that job",
            "SELECT * FROM job_checkpoints(?) LIMIT 5",
            (BIG_JOB,),
            1,
            lambda c: c.checkpoints(BIG_JOB, limit=5, pages=1),
            False,
        ),
        (
            f"IN over {JOBS} jobs",
            f"SELECT * FROM job_checkpoints WHERE fine_tuning_job_id IN ({in_list})",
            (),
            JOBS,
            lambda c: [c.checkpoints(j) for j in jobs],
            False,
        ),
        (
            f"JOIN from a local table, {JOBS} jobs",
            "SELECT * FROM my_jobs m JOIN job_checkpoints c ON c.fine_tuning_job_id = m.id",
            (),
            JOBS,
            lambda c: [c.checkpoints(j) for j in jobs],
            False,
        ),
        (
            f"local JOIN, each of {JOBS} keys 3x",
            "SELECT * FROM my_runs m JOIN job_checkpoints c ON c.fine_tuning_job_id = m.id",
            (),
            3 * JOBS,
            lambda c: [c.checkpoints(j) for j in jobs for _ in range(3)],
            False,
        ),
        (
            f"repeated IN over {JOBS} jobs (cached)",
            f"SELECT * FROM job_checkpoints WHERE fine_tuning_job_id IN ({in_list})",
            (),
            JOBS,
            lambda c: [c.checkpoints(j) for j in jobs],
            True,
        ),
    ]
    results = []
    for name, sql, args, one_by_one, by_hand, warm in scenarios:
        shared = connection(base_url, key)
        if warm:
            shared.execute(sql, args).fetchall()
        counts: list[int] = []

        def run_vtab(
            sql: str = sql,
            args: tuple[Any, ...] = args,
            warm: bool = warm,
            shared: Any = shared,
            counts: list[int] = counts,
        ) -> None:
            db = shared if warm else connection(base_url, key)
            counts.append(sent(db, sql, args)[0])

        seconds = timed(run_vtab, repeat)
        results.append(
            Result(
                name,
                counts[-1],
                seconds,
                floor=one_by_one * latency,
                sdk=timed(lambda f=by_hand: f(sdk), repeat) if sdk else None,
                raw=timed(lambda f=by_hand: f(raw), repeat),
            )
        )
    return results


def join_forms(base_url: str, key: str, repeat: int) -> list[tuple[str, str, int, int, float]]:
    """(form, SQL, requests, of them read ahead, median seconds) for the join forms of issue 13, each on a fresh
    connection (an empty cache)."""
    succeeded = "SELECT id FROM fine_tuning_jobs WHERE status = 'succeeded'"
    local = "CREATE TEMP TABLE mine AS SELECT id FROM fine_tuning_jobs WHERE status = 'succeeded'"
    forms = [
        ("IN (the reference)", f"SELECT c.* FROM job_checkpoints c WHERE c.fine_tuning_job_id IN ({succeeded})", ""),
        (
            "JOIN jobs -> checkpoints",
            "SELECT c.* FROM fine_tuning_jobs j JOIN job_checkpoints c ON c.fine_tuning_job_id = j.id "
            "WHERE j.status = 'succeeded'",
            "",
        ),
        (
            "JOIN jobs -> events",
            "SELECT e.* FROM fine_tuning_jobs j JOIN job_events e ON e.fine_tuning_job_id = j.id "
            "WHERE j.status = 'succeeded'",
            "",
        ),
        (
            "JOIN, filter the jobs cannot see",
            "SELECT c.* FROM fine_tuning_jobs j JOIN job_checkpoints c ON c.fine_tuning_job_id = j.id "
            "WHERE j.status = 'succeeded' AND unicode(substr(j.id, -1)) % 4 = 0",
            "",
        ),
        (
            "local table, IN",
            "SELECT c.* FROM job_checkpoints c WHERE c.fine_tuning_job_id IN (SELECT id FROM mine)",
            local,
        ),
        ("local table, JOIN", "SELECT c.* FROM mine m JOIN job_checkpoints c ON c.fine_tuning_job_id = m.id", local),
    ]
    out = []
    for name, sql, setup in forms:
        counts: list[tuple[int, int]] = []

        def run(sql: str = sql, setup: str = setup, counts: list[tuple[int, int]] = counts) -> None:
            db = connection(base_url, key)
            if setup:
                db.execute(setup)
            db.execute("DELETE FROM openai_requests")
            db.execute(sql).fetchall()
            counts.append(db.execute("SELECT count(*), total(speculative) FROM openai_requests").fetchone())

        seconds = timed(run, repeat)
        out.append((name, sql, counts[-1][0], int(counts[-1][1]), seconds))
    return out


def row_cost(base_url: str, key: str, rows: int, rounds: int) -> list[tuple[str, float, float, float, float]]:
    """(what, client CPU seconds, wall seconds, CPU ratio, wall ratio) for reading every row of a job of ``rows``
    checkpoints with no latency, cache off, against a plain requests loop building the same tuples.

    CPU is this process's time (all its threads; the fake runs in another process). The forms run in turns,
    ``rounds`` times, and each keeps its fastest run: on a shared machine the slower runs measure the neighbours.
    """
    raw = Raw(base_url, key)
    db = connection(base_url, key, cache_ttl=0)
    star = "SELECT * FROM job_checkpoints(?)"
    three = "SELECT step_number, train_loss, full_valid_loss FROM job_checkpoints(?)"
    forms: dict[str, Callable[[], list[Any]]] = {
        star: lambda: db.execute(star, (HUGE_JOB,)).fetchall(),
        "plain loop, the same 12 columns": lambda: raw.rows(HUGE_JOB, every_column),
        three: lambda: db.execute(three, (HUGE_JOB,)).fetchall(),
        "plain loop, the same 3 columns": lambda: raw.rows(HUGE_JOB, three_columns),
    }
    best: dict[str, tuple[float, float]] = {}
    for _ in range(rounds):
        for name, form in forms.items():
            cpu, wall = time.process_time(), time.perf_counter()
            got = len(form())
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            assert got == rows, (name, got)
            old_cpu, old_wall = best.get(name, (math.inf, math.inf))
            best[name] = (min(cpu, old_cpu), min(wall, old_wall))
    out = []
    names = list(forms)
    for query, loop in ((names[0], names[1]), (names[2], names[3])):
        for name in (query, loop):
            cpu, wall = best[name]
            out.append((name.replace("?", f"'{HUGE_JOB}'"), cpu, wall, cpu / best[loop][0], wall / best[loop][1]))
    return out


def memory(base_url: str, key: str, huge: int) -> list[tuple[str, float]]:
    """Peak Python memory (MB) while scanning a job of ``huge`` checkpoints."""
    out = []
    for label, options in (("cache off", {"cache_ttl": 0}), ("cache on (default 32 MiB bound)", {})):
        db = connection(base_url, key, **options)
        tracemalloc.start()
        count = sum(1 for _ in db.execute("SELECT id, step_number, metrics FROM job_checkpoints(?)", (HUGE_JOB,)))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert count == huge, count
        out.append((f"scan of {huge:,} checkpoints, {label}", peak / 1e6))
    raw = Raw(base_url, key)
    tracemalloc.start()
    page = raw.checkpoints(HUGE_JOB, pages=1)
    one_page = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    out.append((f"for scale: one page of {len(page)} items, parsed", one_page / 1e6))
    return out


def archive_runs(base_url: str, key: str, repeat: int) -> tuple[float, list[tuple[str, int, float]]]:
    """One request's round trip (the baseline), and (run, requests, median seconds) for archiving the demo
    organization into a new file, then again into the same file."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    round_trip = timed(lambda: session.get(f"{base_url}/models").json(), repeat)
    runs: dict[str, list[tuple[int, float]]] = {"first run, new file": [], "re-run, same file": []}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "history.db")
            for name in runs:
                started = time.perf_counter()
                report = archive(path, api_key=key, base_url=base_url)
                runs[name].append((report.requests, time.perf_counter() - started))
    return round_trip, [(name, r[-1][0], statistics.median(s for _, s in r)) for name, r in runs.items()]


def ratio(a: float, b: float | None) -> str:
    return "-" if b is None or b == 0 else f"{a / b:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1, help="seconds the fake waits before answering")
    parser.add_argument(
        "--quick", action="store_true", help="one repetition, 20,000 rows for the row cost and the memory scan"
    )
    args = parser.parse_args()
    repeat = 1 if args.quick else 3
    huge = 20_000 if args.quick else 100_000

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"apsw {apsw.apsw_version()}, openai SDK {openai.__version__ if openai else 'not installed'}")  # fmt: skip
    print(f"fake API in a child process on 127.0.0.1, {args.latency * 1000:.0f} ms per response; median of {repeat}\n")

    with fake_api(args.latency, huge) as (base_url, key, set_latency):
        results = network_scenarios(base_url, key, args.latency, repeat)
        set_latency(0.0)
        costs = row_cost(base_url, key, huge, rounds=2 if args.quick else 5)
        peaks = memory(base_url, key, huge)
    with fake_api(args.latency, data="demo") as (base_url, key, _):
        round_trip, archived = archive_runs(base_url, key, repeat)
    limited = [
        (rate, latency, *rate_limited_in(rate, latency, repeat))
        for rate in RATE_LIMITS
        for latency in sorted({0.0, args.latency})
    ]
    with fake_api(JOIN_LATENCY, data="joins") as (base_url, key, _):
        joins = join_forms(base_url, key, repeat)

    header = f"| {'scenario':<36} | requests | wall ms | vs one-by-one floor | vs openai SDK | vs requests loop |"
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for r in results:
        print(
            f"| {r.name:<36} | {r.requests:>8} | {r.seconds * 1000:>7.0f} | {ratio(r.seconds, r.floor):>19} "
            f"| {ratio(r.seconds, r.sdk):>13} | {ratio(r.seconds, r.raw):>16} |"
        )
    concurrent = next(r for r in results if r.name.startswith("IN over"))
    target = 1.5 * math.ceil(JOBS / openai_vtab.DEFAULT_MAX_WORKERS) * args.latency
    verdict = "met" if concurrent.seconds <= target else "MISSED"
    print(f"\nIN target: <= 1.5 x ceil({JOBS}/8) x {args.latency * 1000:.0f} ms = {target * 1000:.0f} ms: {verdict}")

    print(
        f"\n| joins: {JOIN_JOBS} succeeded jobs of {2 * JOIN_JOBS}, {JOIN_LATENCY * 1000:.0f} ms per response "
        "| requests | read ahead | wall ms | vs IN |"
    )
    print("|---|---|---|---|---|")
    reference = joins[0][4]
    for name, _, sent, ahead, seconds in joins:
        print(f"| {name} | {sent} | {ahead} | {seconds * 1000:.0f} | {ratio(seconds, reference)} |")
    join = next(seconds for name, *_, seconds in joins if name == "JOIN jobs -> checkpoints")
    verdict = "met" if join <= 1.5 * reference else "MISSED"
    print(f"\nJOIN target: <= 1.5 x the IN form = {1.5 * reference * 1000:.0f} ms: {verdict}")

    print(
        f"\n| rows at the cost of a loop: {huge:,} checkpoints, no latency, cache off "
        "| client CPU ms | wall ms | CPU vs loop | wall vs loop |"
    )
    print("|---|---|---|---|---|")
    for name, cpu, wall, cpu_ratio, wall_ratio in costs:
        print(f"| {name} | {cpu * 1000:.0f} | {wall * 1000:.0f} | {cpu_ratio:.2f}x | {wall_ratio:.2f}x |")
    star = costs[0][3]
    print(f"\nSELECT * target: client CPU <= 1.1 x the loop's: {'met' if star <= 1.1 else 'MISSED'} ({star:.2f}x)")

    print(
        f"\n| archive of the demo organization (14 jobs) | requests | wall ms | round trips "
        f"(of {round_trip * 1000:.0f} ms) | vs one-by-one floor |"
    )
    print("|---|---|---|---|---|")
    for name, sent, seconds in archived:
        print(
            f"| {name} | {sent} | {seconds * 1000:.0f} | {seconds / round_trip:.1f} "
            f"| {ratio(seconds, sent * round_trip)} |"
        )

    # The limit's pace, and the floor for a bucket that starts full: its tokens at once, the rest at its rate.
    print(
        f"\n| IN over {RATE_KEYS} keys, against a rate limit | requests | 429s (most in a run) | wall ms "
        "| vs the limit's pace | vs a full bucket's floor |"
    )
    print("|---|---|---|---|---|---|")
    for rate, latency, requests_sent, refused, seconds in limited:
        pace, floor = RATE_KEYS / rate, (RATE_KEYS - rate) / rate
        print(
            f"| {rate:g} req/s (bucket of {rate:g}), {latency * 1000:.0f} ms per response | {requests_sent} "
            f"| {refused} | {seconds * 1000:.0f} | {ratio(seconds, pace)} ({pace:g} s) "
            f"| {ratio(seconds, floor)} ({floor:g} s) |"
        )

    print("\n| memory | peak MB |")
    print("|---|---|")
    for label, mb in peaks:
        print(f"| {label} | {mb:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
