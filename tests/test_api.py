"""The Python API: what register() accepts, the Registration it returns (closing, repr), where warnings point,
and the typing marker the package ships."""

from __future__ import annotations

import importlib.metadata
import linecache
import pickle
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
import zipfile
from pathlib import Path

import apsw
import pytest

import openai_vtab
from openai_vtab.shell import OpenAIShell
from openai_vtab.testing import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk-test-never-shown-abcdefghijklmnop-6789"


def jobs_with_checkpoints(api: FakeOpenAI, jobs: int, checkpoints: int) -> list[str]:
    ids = [api.add_job()["id"] for _ in range(jobs)]
    for job in ids:
        api.add_checkpoints(job, checkpoints)
    return ids


def registered(api: FakeOpenAI, **options: object) -> tuple[apsw.Connection, openai_vtab.Registration]:
    db = apsw.Connection(":memory:", statementcachesize=0)
    options.setdefault("api_key", api.api_key)
    return db, openai_vtab.register(db, base_url=api.base_url, **options)


def test_a_sqlite3_connection_is_refused_with_what_to_use_instead() -> None:
    with pytest.raises(TypeError, match=r"needs an apsw\.Connection, not a sqlite3\.Connection") as caught:
        openai_vtab.register(sqlite3.connect(":memory:"))  # type: ignore[arg-type]
    assert 'apsw.Connection("experiments.db")' in str(caught.value)
    with pytest.raises(TypeError, match=r"needs an apsw\.Connection, not a str: open the database with apsw"):
        openai_vtab.register("experiments.db")  # type: ignore[arg-type]


def test_the_with_block_stops_the_worker_threads(api: FakeOpenAI) -> None:
    jobs = jobs_with_checkpoints(api, 3, 2)
    before = pool_threads()
    db, registration = registered(api, max_workers=3)
    with registration as entered:
        assert entered is registration
        marks = ", ".join("?" * len(jobs))
        rows = db.execute(f"SELECT count(*) FROM job_checkpoints WHERE fine_tuning_job_id IN ({marks})", jobs)
        assert rows.fetchall() == [(6,)]
        workers = pool_threads() - before
        assert workers  # the pool starts a thread per fetch while none is idle: one to three here
    assert [thread for thread in workers if thread.is_alive()] == []
    assert registration.closed


def test_close_drops_a_retry_in_progress_instead_of_waiting_for_it(api: FakeOpenAI) -> None:
    # The stream reads keys in sorted order: the quick job's rows come first while the slow one waits.
    quick, slow = api.add_job(id="ftjob-a-quick")["id"], api.add_job(id="ftjob-b-slow")["id"]
    for job in (quick, slow):
        api.add_checkpoints(job, 1)
    api.fail(503, times=1, match=slow, headers={"retry-after": "20"})  # then a 20 s pause before the retry
    before = pool_threads()  # other tests' registrations may still be winding down: not this one's to stop
    db, registration = registered(api)
    cursor = db.execute(
        "SELECT fine_tuning_job_id FROM job_checkpoints WHERE fine_tuning_job_id IN (?, ?)", (quick, slow)
    )
    assert next(cursor) == (quick,)
    for _ in range(100):  # until the slow job's first answer is on its way back (at most 10 s)
        if any(slow in request.path for request in api.requests):
            break
        time.sleep(0.1)
    workers = pool_threads() - before - {threading.current_thread()}
    registration.close()
    # One request each, in whichever order they arrived: the slow job's retry was never sent.
    assert sorted(request.path.rsplit("/", 2)[-2] for request in api.requests) == [quick, slow]
    assert [thread for thread in workers if thread.is_alive()] == []


def pool_threads() -> set[threading.Thread]:
    """The worker threads of every registration alive now."""
    return {thread for thread in threading.enumerate() if thread.name.startswith("openai-vtab")}


def test_a_closed_registration_fails_queries_with_advice_and_sends_nothing(api: FakeOpenAI) -> None:
    (job,) = jobs_with_checkpoints(api, 1, 2)
    db, registration = registered(api)
    with registration:
        assert db.execute("SELECT count(*) FROM job_checkpoints(?)", (job,)).fetchall() == [(2,)]
    sent = len(api.requests)
    with pytest.raises(openai_vtab.RegistrationClosedError, match=r"were closed .* call openai_vtab\.register"):
        db.execute("SELECT count(*) FROM job_checkpoints(?)", (job,)).fetchall()
    assert len(api.requests) == sent  # not even the cached answer: the cache went with close()
    assert registration.clear_cache() == 0
    assert db.execute("SELECT 1").fetchall() == [(1,)]
    assert db.execute("SELECT count(*) FROM openai_requests").fetchall() == [(1,)]  # the log stays readable
    registration.close()  # again: nothing happens
    openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url)
    assert db.execute("SELECT count(*) FROM job_checkpoints(?)", (job,)).fetchall() == [(2,)]


def test_a_scan_still_open_at_close_fails_with_advice_at_its_next_page(api: FakeOpenAI) -> None:
    (job,) = jobs_with_checkpoints(api, 1, 250)  # three pages
    db, registration = registered(api)
    cursor = db.execute("SELECT id FROM job_checkpoints(?)", (job,))
    first_page = [next(cursor) for _ in range(100)]
    assert len(first_page) == 100
    registration.close()
    with pytest.raises(openai_vtab.RegistrationClosedError, match="were closed"):
        list(cursor)
    assert len(api.requests) == 1


def test_tracebacks_name_the_public_path_of_an_error() -> None:
    error = openai_vtab.NotFoundError("models: GET /models failed with HTTP 404", status_code=404, path="/models")
    assert traceback.format_exception_only(error) == [
        "openai_vtab.NotFoundError: models: GET /models failed with HTTP 404\n"
    ]
    copy = pickle.loads(pickle.dumps(openai_vtab.RegistrationClosedError("closed")))
    assert (type(copy), str(copy)) == (openai_vtab.RegistrationClosedError, "closed")


def test_repr_shows_the_settings_and_requests_sent_but_never_the_key(api: FakeOpenAI) -> None:
    api.api_key = SECRET
    (job,) = jobs_with_checkpoints(api, 1, 1)
    db, registration = registered(api, api_key=SECRET, max_workers=3)
    db.execute("SELECT * FROM job_checkpoints(?)", (job,)).fetchall()
    assert repr(registration) == (
        f"<openai_vtab.Registration base_url={api.base_url!r} api_key=register(api_key=...) (sk-...6789) "
        "max_workers=3 requests_sent=1>"
    )
    registration.close()
    assert repr(registration).startswith("<openai_vtab.Registration closed base_url=")
    assert SECRET not in repr(registration)


def test_repr_names_an_environment_key_or_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    assert " api_key=OPENAI_API_KEY (sk-...6789) " in repr(openai_vtab.register(apsw.Connection(":memory:")))
    monkeypatch.delenv("OPENAI_API_KEY")
    assert " api_key=(not set) " in repr(openai_vtab.register(apsw.Connection(":memory:")))


def test_a_name_clash_warning_points_at_the_callers_statement() -> None:
    db = apsw.Connection(":memory:")
    db.execute("CREATE TABLE models(name TEXT)")
    with pytest.warns(openai_vtab.TableNameClashWarning, match="use openai_models for ours") as caught:
        openai_vtab.register(db)
    (warning,) = caught
    assert warning.filename == __file__
    assert "openai_vtab.register(db)" in linecache.getline(warning.filename, warning.lineno)


def test_a_name_clash_warning_skips_every_frame_of_the_package(tmp_path: Path) -> None:
    # The shell registers its connection itself: the warning must not point at shell.py either.
    path = tmp_path / "mine.db"
    apsw.Connection(str(path)).execute("CREATE TABLE files(name TEXT)")
    shell = OpenAIShell()
    shell.db = (apsw.Connection(str(path)), str(path))
    with pytest.warns(openai_vtab.TableNameClashWarning, match="your main.files hides") as caught:
        assert shell.db is not None  # the shell's property registers the tables here
    assert [warning.filename for warning in caught] == [__file__]


def test_the_package_ships_its_typing_marker(tmp_path: Path) -> None:
    if tuple(int(part) for part in importlib.metadata.version("setuptools").split(".")[:2]) < (77, 0):
        pytest.skip("building the wheel offline needs setuptools>=77 (pip install -e '.[test]')")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(ROOT / "openai_vtab", source / "openai_vtab", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", str(tmp_path / "out"), str(source)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (wheel,) = (tmp_path / "out").glob("openai_vtab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "openai_vtab/py.typed" in names
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Classifier: Typing :: Typed" in metadata.splitlines()
