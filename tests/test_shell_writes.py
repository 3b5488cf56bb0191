"""The shell's --allow-writes: off by default with advice, and one line per changed object when on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from shell_helpers import in_a_scratch_directory, run  # noqa: F401 - an autouse fixture

from openai_vtab.testing import FakeOpenAI

CHANGE_LINE = re.compile(r"(fine_tuning_jobs|checkpoint_permissions|batches|files): \S+ ")


def test_writes_are_refused_without_the_flag(api: FakeOpenAI) -> None:
    api.add_job(status="running")
    result = run([":memory:", "UPDATE fine_tuning_jobs SET status = 'cancelled'"], api)
    assert result.returncode == 1
    assert "writes to the OpenAI API are off" in result.stderr and "--allow-writes" in result.stderr
    assert api.requests == []


@pytest.mark.parametrize("where", ["before", "after"])
def test_allow_writes_prints_one_line_per_changed_object(api: FakeOpenAI, where: str) -> None:
    jobs = sorted(api.add_job(status="running")["id"] for _ in range(2))
    api.add_job(status="succeeded")
    sql = "UPDATE fine_tuning_jobs SET status = 'cancelled' WHERE status = 'running'"
    args = ["--allow-writes", ":memory:", sql] if where == "before" else [":memory:", "--allow-writes", sql]
    result = run(args, api)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stderr.splitlines()) == [
        f"fine_tuning_jobs: {job} set to cancelled (status now cancelled)" for job in jobs
    ]
    assert result.stdout == ""
    assert sorted(r.path for r in api.requests if r.method == "POST") == [
        f"/v1/fine_tuning/jobs/{job}/cancel" for job in jobs
    ]


def test_a_write_that_fails_half_way_prints_what_it_did_and_the_error(api: FakeOpenAI) -> None:
    files = [api.add_file(f"old-{i}.jsonl")["id"] for i in range(3)]
    api.fail(404, match=f"/files/{files[1]}")
    result = run(["--allow-writes", ":memory:", "DELETE FROM files WHERE filename LIKE 'old-%'"], api)
    assert result.returncode == 1
    deleted, error = result.stderr.splitlines()
    assert deleted.startswith("files: ") and deleted.endswith(" deleted")
    assert "nothing was rolled back" in error and f"not changed: {files[1]}" in error


def test_change_lines_stay_out_of_an_output_file(api: FakeOpenAI, tmp_path: Path) -> None:
    job = api.add_job(status="running")["id"]
    out = tmp_path / "out.csv"
    sql = "UPDATE fine_tuning_jobs SET status = 'paused'; SELECT id, status FROM fine_tuning_jobs"
    result = run(["--allow-writes", "-csv", ":memory:", f".output {out}", sql], api)
    assert result.returncode == 0, result.stderr
    assert out.read_text() == f"{job},paused\n"
    assert result.stderr == f"fine_tuning_jobs: {job} set to paused (status now paused)\n"


def test_readonly_says_why_a_write_is_refused(api: FakeOpenAI, tmp_path: Path) -> None:
    api.add_job(status="running")
    mine = tmp_path / "mine.db"
    assert run([str(mine), "CREATE TABLE t(x)"], api).returncode == 0
    result = run(["--allow-writes", "-readonly", str(mine), "UPDATE fine_tuning_jobs SET status = 'paused'"], api)
    assert result.returncode == 1
    assert "the database was opened read-only (-readonly in the shell" in result.stderr
    assert "ATTACH 'file:your.db?mode=ro'" in result.stderr
    assert [r for r in api.requests if r.method != "GET"] == []


def test_the_sqlite3_loader_refuses_allow_writes_up_front(api: FakeOpenAI) -> None:
    api.add_file("old.jsonl")
    result = run(["--allow-writes", "--sqlite3-loader", ":memory:", "x=DELETE FROM files"], api)
    assert result.returncode == 1
    assert "--allow-writes does not go with --sqlite3-loader" in result.stderr
    assert "CREATE TEMP TABLE" not in result.stdout
    assert api.requests == []


def test_the_sqlite3_loader_refuses_a_query_that_is_not_a_read(api: FakeOpenAI) -> None:
    result = run(["--sqlite3-loader", ":memory:", "x=CREATE TABLE t(x)"], api)
    assert result.returncode == 1
    assert "x= must be a query that only reads (SELECT ...)" in result.stderr
    assert "CREATE TEMP TABLE" not in result.stdout


def test_the_sqlite3_loader_refuses_a_write_to_an_openai_table_with_its_own_advice(api: FakeOpenAI) -> None:
    # The write guard refuses it first, and its advice (--allow-writes) is what the loader refuses.
    api.add_job(status="running")
    result = run(["--sqlite3-loader", ":memory:", "x=UPDATE fine_tuning_jobs SET status = 'cancelled'"], api)
    assert result.returncode == 1
    assert "x= must be a query that only reads (SELECT ...)" in result.stderr
    assert "Change the OpenAI tables in the openai-vtab shell with --allow-writes, or from Python" in result.stderr
    assert "writes to the OpenAI API are off" not in result.stderr
    assert "CREATE TEMP TABLE" not in result.stdout
    assert api.requests == []


def test_the_readme_session_runs_as_shown() -> None:
    """The "Changing things" session in the README, typed into the demo shell, prints what the README shows."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index("A session on the demo organization")
    block = readme[readme.index("```\n", start) + 4 :]
    block = block[: block.index("```\n")]
    typed, shown = [], []
    for line in block.splitlines():
        prompt = next((p for p in ("openai-vtab> ", "        ...> ") if line.startswith(p)), None)
        (typed if prompt else shown).append(line[len(prompt or "") :])
    result = run(["--demo", "--allow-writes", ":memory:"], None, stdin="\n".join(typed) + "\n")
    assert result.returncode == 0, result.stderr
    # The change lines go to stderr, the rows to stdout: each in the order the README shows.
    changes = [line for line in shown if CHANGE_LINE.match(line)]
    assert result.stderr.splitlines() == changes
    assert result.stdout.splitlines() == [line for line in shown if line not in changes]
