"""``openai-vtab --archive FILE``: the shell's way to the archive, with its exit codes and messages."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from shell_helpers import environment, in_a_scratch_directory, run

from openai_vtab.testing import FakeOpenAI

__all__ = ["in_a_scratch_directory"]  # the fixture, used by every test here


def test_demo_archive_then_rerun_fetches_only_what_can_change(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    first = run(["--demo", "--timeout", "30", "--max-retries", "1", "--archive", str(path)], None)
    assert (first.returncode, first.stdout) == (0, "")
    assert first.stderr.startswith(f"archived into {path}: fine_tuning_jobs 14, ")
    assert "(14 jobs fetched, 0 already complete;" in first.stderr
    again = run(["--demo", f"--archive={path}"], None)
    assert again.returncode == 0
    assert "(3 jobs fetched, 11 already complete;" in again.stderr  # running, queued, validating
    with sqlite3.connect(path) as db:  # any SQLite tool reads it
        assert db.execute("SELECT count(*) FROM fine_tuning_jobs").fetchone() == (14,)
        assert db.execute("SELECT count(*), sum(status = 'ok') FROM archive_runs").fetchone() == (2, 2)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_job_that_fails_is_named_and_the_exit_status_is_1(tmp_path: Path) -> None:
    with FakeOpenAI() as api:
        jobs = [api.add_job()["id"] for _ in range(3)]
        api.fail(400, match=f"{jobs[1]}/events", times=10)
        result = run(["--archive", str(tmp_path / "h.db")], api)
        assert result.returncode == 1
        assert f"failed: {jobs[1]}: job_events: GET /fine_tuning/jobs/{jobs[1]}/events failed with HTTP 400" in (
            result.stderr
        )
        assert "with 1 failure" in result.stderr
        api.clear()
        assert run(["--archive", str(tmp_path / "h.db")], api).returncode == 0


def test_archive_takes_no_database_or_sql(tmp_path: Path) -> None:
    result = run(["--demo", "--archive", str(tmp_path / "h.db"), "SELECT 1"], None)
    assert result.returncode == 1
    assert result.stderr == "Error: --archive FILE takes API options (--demo, --timeout, ...), no database or SQL\n"
    assert not (tmp_path / "h.db").exists()


def test_archive_without_a_key_says_how_to_give_one(tmp_path: Path) -> None:
    result = run(["--archive", str(tmp_path / "h.db")], None, env=environment(None))
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and "OPENAI_API_KEY" in result.stderr


def test_archive_needs_a_file_it_can_keep(tmp_path: Path) -> None:
    for path in (":memory:", "", "file:x.db?mode=memory"):
        result = run(["--demo", "--archive", path], None)
        assert result.returncode == 1
        assert result.stderr.startswith(f"Error: --archive needs the name of a file to keep, not {path!r}")
    assert run(["--demo-server", "--archive", str(tmp_path / "h.db")], None).returncode == 1
