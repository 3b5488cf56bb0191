"""Every file in examples/ runs, as its header comment says to run it, against the fake API.

The fake serves the demo's sample organization; expected rows are computed here from the fake's data.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from openai_vtab.demo import EXPERIMENTS, populate
from openai_vtab.testing import FakeOpenAI

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPT = Path(sys.executable).with_name("openai-vtab")
STOCK_SQLITE3 = shutil.which("sqlite3")


@pytest.fixture(autouse=True)
def _in_a_scratch_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files a command creates (a database named by mistake, readline history) land in tmp_path."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def sample() -> Iterator[FakeOpenAI]:
    """The fake API serving the sample organization."""
    with FakeOpenAI() as api:
        populate(api)
        yield api


def environment(api: FakeOpenAI) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_") and k != "NO_COLOR"}
    env.update(OPENAI_API_KEY=api.api_key, OPENAI_BASE_URL=api.base_url)
    env["PATH"] = f"{SCRIPT.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(command: Sequence[str], api: FakeOpenAI, *, stdin: str = "", cwd: Path | None = None, stderr: str = "") -> str:
    """Run ``command``; its stdout, after checking it succeeded and printed ``stderr`` on stderr."""
    result = subprocess.run(
        command, input=stdin, capture_output=True, text=True, env=environment(api), cwd=cwd, timeout=60
    )
    assert (result.returncode, result.stderr) == (0, stderr), result
    return result.stdout


def recipe(name: str, api: FakeOpenAI, database: str = ":memory:", *options: str) -> list[dict[str, str]]:
    """An SQL recipe piped into ``openai-vtab -csv -header``, as rows."""
    out = run([str(SCRIPT), *options, "-csv", "-header", database], api, stdin=(EXAMPLES / name).read_text())
    return list(csv.DictReader(out.splitlines()))


def succeeded(api: FakeOpenAI) -> list[dict[str, Any]]:
    return [job for job in api.state.jobs.values() if job["status"] == "succeeded"]


def best(api: FakeOpenAI, job: dict[str, Any]) -> dict[str, Any]:
    return min(api.state.checkpoints[job["id"]], key=lambda c: c["metrics"]["full_valid_loss"])


def last_step(api: FakeOpenAI, job: dict[str, Any]) -> int:
    return max(c["step_number"] for c in api.state.checkpoints[job["id"]])


def test_every_example_is_run_by_a_test_here() -> None:
    source = Path(__file__).read_text()
    assert [p.name for p in sorted(EXAMPLES.iterdir()) if f'"{p.name}"' not in source] == []


def test_best_checkpoint_per_job(sample: FakeOpenAI) -> None:
    rows = recipe("best_checkpoint_per_job.sql", sample)
    jobs = [job for job in succeeded(sample) if job["metadata"]["experiment"] in EXPERIMENTS]
    jobs.sort(key=lambda job: (job["metadata"]["experiment"], best(sample, job)["metrics"]["full_valid_loss"]))
    assert rows == [
        {
            "experiment": job["metadata"]["experiment"],
            "model": job["model"],
            "job": job["id"],
            "best_step": str(best(sample, job)["step_number"]),
            "last_step": str(last_step(sample, job)),
            "loss": str(best(sample, job)["metrics"]["full_valid_loss"]),
            "accuracy": str(best(sample, job)["metrics"]["full_valid_mean_token_accuracy"]),
        }
        for job in jobs
    ]
    assert any(row["best_step"] != row["last_step"] for row in rows)  # the sample has overfitting runs


def test_metric_curve(sample: FakeOpenAI) -> None:
    rows = recipe("metric_curve.sql", sample)
    job = max(succeeded(sample), key=lambda j: j["created_at"])
    checkpoints = sorted(sample.state.checkpoints[job["id"]], key=lambda c: c["step_number"])
    lowest = min(c["metrics"]["full_valid_loss"] for c in checkpoints)
    assert rows == [
        {
            "step": str(c["step_number"]),
            "train_loss": str(c["metrics"]["train_loss"]),
            "valid_loss": str(c["metrics"]["valid_loss"]),
            "full_valid_loss": str(c["metrics"]["full_valid_loss"]),
            "accuracy": str(c["metrics"]["full_valid_mean_token_accuracy"]),
            "curve": "#" * math.floor(c["metrics"]["full_valid_loss"] * 40 + 0.5),
            "best": "<- best" if c["metrics"]["full_valid_loss"] == lowest else "",
        }
        for c in checkpoints
    ]


def test_failed_jobs(sample: FakeOpenAI) -> None:
    rows = recipe("failed_jobs.sql", sample)
    failed = sorted((j for j in sample.state.jobs.values() if j["status"] == "failed"), key=lambda j: -j["created_at"])
    assert rows == [
        {
            "job": job["id"],
            "model": job["model"],
            "suffix": job["user_provided_suffix"],
            "created": datetime.fromtimestamp(job["created_at"], timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            "code": job["error"]["code"],
            "param": job["error"]["param"] or "",
            "message": job["error"]["message"],
            "checkpoints": str(len(sample.state.checkpoints[job["id"]])),
        }
        for job in failed
    ]


def test_snapshot_is_plain_sqlite_and_survives_a_failed_refresh(sample: FakeOpenAI, tmp_path: Path) -> None:
    database = tmp_path / "snapshot.db"
    script = (EXAMPLES / "snapshot.sql").read_text()
    run([str(SCRIPT), "-bail", str(database)], sample, stdin=script)

    def read() -> tuple[set[str], set[tuple[Any, ...]], set[str]]:
        with sqlite3.connect(database) as db:  # the standard library's SQLite: no openai_vtab in sight
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
            rows = set(
                db.execute("SELECT job_id, checkpoint_id, step_number, full_valid_loss FROM checkpoints_snapshot")
            )
            taken = {at for (at,) in db.execute("SELECT DISTINCT taken_at FROM jobs_snapshot")}
            assert db.execute("SELECT count(*) FROM jobs_snapshot").fetchone() == (len(sample.state.jobs),)
        db.close()
        return tables, rows, taken

    tables, rows, taken = read()
    assert tables == {"jobs_snapshot", "checkpoints_snapshot"}  # the OpenAI tables left nothing in the file
    assert rows == {
        (job, c["id"], c["step_number"], c["metrics"]["full_valid_loss"])
        for job, checkpoints in sample.state.checkpoints.items()
        for c in checkpoints
    }

    sample.fail(400, match="/checkpoints")  # not retried: the refresh fails at once
    try:
        result = subprocess.run(
            [str(SCRIPT), "-bail", str(database)],
            input=script,
            capture_output=True,
            text=True,
            env=environment(sample),
            timeout=60,
        )
    finally:
        sample.clear()
    assert result.returncode == 1
    assert read() == (tables, rows, taken)


@pytest.mark.skipif(STOCK_SQLITE3 is None, reason="the sqlite3 CLI is not installed (apt-get install sqlite3)")
def test_sqlite3_session(sample: FakeOpenAI, tmp_path: Path) -> None:
    assert STOCK_SQLITE3 is not None
    out = run(
        [STOCK_SQLITE3, "experiments.db"], sample, stdin=(EXAMPLES / "sqlite3_session.sql").read_text(), cwd=tmp_path
    )
    lines = [line.split() for line in out.splitlines()]
    statuses = Counter(job["status"] for job in sample.state.jobs.values())
    counts = sorted(statuses.items(), key=lambda item: (-item[1], item[0]))
    assert lines[: 2 + len(counts)] == [["status", "jobs"], ["-" * 16, "----"], *([s, str(n)] for s, n in counts)]
    tracked = sorted(succeeded(sample), key=lambda job: best(sample, job)["metrics"]["full_valid_loss"])
    assert lines[4 + len(counts) :] == [
        [
            job["model"],
            job["user_provided_suffix"],
            str(best(sample, job)["metrics"]["full_valid_loss"]),
            str(len(sample.state.checkpoints[job["id"]])),
        ]
        for job in tracked
    ]


def test_load_openai_vtab_in_apsw_shell(sample: FakeOpenAI, tmp_path: Path) -> None:
    loader = str(EXAMPLES / "load_openai_vtab.py")
    job = succeeded(sample)[0]["id"]
    out = run(
        [
            sys.executable,
            "-m",
            "apsw",
            "-init",
            loader,
            ":memory:",
            "SELECT count(*) FROM fine_tuning_jobs",
            ".open second.db",  # a new connection: .read the loader again
            f".read {loader}",
            f"SELECT count(*) FROM job_checkpoints('{job}')",
        ],
        sample,
        cwd=tmp_path,
    )
    assert out.splitlines() == [str(len(sample.state.jobs)), str(len(sample.state.checkpoints[job]))]


def test_pick_checkpoints(sample: FakeOpenAI) -> None:
    picks = sorted(
        (best(sample, job)["metrics"]["full_valid_loss"], job)
        for job in succeeded(sample)
        if best(sample, job)["metrics"]["full_valid_loss"] <= 0.3
    )
    sent = 1 + len(succeeded(sample))  # the job list, then each succeeded job's checkpoints
    summary = f"{len(picks)} jobs, {sent} requests to the API\n"
    out = run([sys.executable, str(EXAMPLES / "pick_checkpoints.py"), "--max-loss", "0.3"], sample, stderr=summary)
    assert 0 < len(picks) < len(succeeded(sample))
    lines = [line.split("  ") for line in out.splitlines()]
    assert [(line[0], line[2]) for line in lines] == [
        (job["id"], best(sample, job)["fine_tuned_model_checkpoint"]) for _, job in picks
    ]
    for (_, job), line in zip(picks, lines, strict=True):
        step, last = best(sample, job)["step_number"], last_step(sample, job)
        assert line[3] == (
            "(final model)" if step == last else f"(best at step {step} of {last}: deploy the checkpoint)"
        )


def test_best_step(sample: FakeOpenAI) -> None:
    rows = recipe("best_step.sql", sample)
    expected = []
    for job in succeeded(sample):
        file = job["result_files"][0]
        lines = list(csv.DictReader(sample.state.contents[file].decode().splitlines()))
        lowest = min((line for line in lines if line["valid_loss"]), key=lambda line: float(line["valid_loss"]))
        step = int(lowest["step"])
        nearest = min(sample.state.checkpoints[job["id"]], key=lambda c: abs(c["step_number"] - step))
        expected.append(
            {
                "job": job["id"],
                "best_step": str(step),
                "valid_loss": str(float(lowest["valid_loss"])),
                "nearest_checkpoint": str(nearest["step_number"]),
                "steps_away": str(abs(nearest["step_number"] - step)),
                "checkpoint": nearest["fine_tuned_model_checkpoint"],
            }
        )
    assert rows == sorted(expected, key=lambda row: float(row["valid_loss"]))
    assert len(rows) == len(succeeded(sample)) > 0


def test_shutdown_dates(sample: FakeOpenAI) -> None:
    rows = recipe("shutdown_dates.sql", sample)
    dates = {model["id"]: model["shutdown_date"] for model in sample.state.models}
    today = datetime.now(timezone.utc).date()
    expected = [
        {
            "fine_tuned_model": job["fine_tuned_model"],
            "base_model": job["model"],
            "shutdown_date": dates[job["model"]] or "",
            "days_left": str((datetime.fromisoformat(dates[job["model"]]).date() - today).days)
            if dates[job["model"]]
            else "",
            "base_listed": "1",
        }
        for job in succeeded(sample)
    ]
    expected.sort(key=lambda row: (row["shutdown_date"] == "", row["shutdown_date"], row["fine_tuned_model"]))
    assert rows == expected
    assert rows[0]["shutdown_date"] and not rows[-1]["shutdown_date"]  # the demo has both kinds
