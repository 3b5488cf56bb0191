"""What people type from sqlite3 habit, run in ``openai-vtab`` and, where sqlite3 has the same thing, in the
stock sqlite3 CLI too: the two outputs must agree. The OpenAI tables come from the fake API on 127.0.0.1.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
from pathlib import Path

import apsw
import pytest
from shell_helpers import (
    SCRIPT,
    STOCK_SQLITE3,
    Terminal,
    environment,
    in_a_scratch_directory,  # noqa: F401 - an autouse fixture
    job_with_checkpoints,
    run,
    terminal_environment,
)

from openai_vtab import TABLES, __version__
from openai_vtab.testing import FakeOpenAI

needs_sqlite3 = pytest.mark.skipif(STOCK_SQLITE3 is None, reason="the sqlite3 CLI is not installed")
HEADING = "-- OpenAI tables (on this connection only, not in the database file):"
OPENAI_NAMES = sorted([*(t.name for t in TABLES), "openai_requests"])


def both(args: list[str], stdin: str = "", api: FakeOpenAI | None = None) -> tuple[bytes, bytes]:
    """The stdout of sqlite3 and of openai-vtab given the same arguments and input, both exiting 0."""
    outputs = []
    for program in (STOCK_SQLITE3, str(SCRIPT)):
        assert program is not None
        result = subprocess.run(
            [program, *args], input=stdin.encode(), capture_output=True, env=environment(api), timeout=60
        )
        assert (result.returncode, result.stderr) == (0, b""), (program, result)
        outputs.append(result.stdout)
    return outputs[0], outputs[1]


def database(path: Path) -> Path:
    """A database file with tables, a view, indexes (one automatic) and a temp-free schema."""
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE experiments(job_id TEXT PRIMARY KEY, note TEXT UNIQUE);
            CREATE INDEX experiments_note ON experiments(note);
            CREATE TABLE a_very_long_table_name_for_the_columns(x);
            CREATE VIEW best AS SELECT job_id FROM experiments;
            INSERT INTO experiments VALUES ('ftjob-1', 'first');
            """
        )
    db.close()
    return path


# -- output modes -----------------------------------------------------------------------------------------

BLOBS = "SELECT x'41220a42ff2c43' AS b, 'text' AS t, x'' AS empty"  # a quote, a newline, a byte not UTF-8


@needs_sqlite3
@pytest.mark.parametrize("mode", ["-list", "-csv", "-tabs", "-line", "-quote"])
def test_blobs_print_as_sqlite3_prints_them(mode: str) -> None:
    theirs, ours = both([mode, ":memory:", BLOBS])
    assert ours == theirs
    assert b"<Binary data>" not in ours


@needs_sqlite3
@pytest.mark.parametrize("mode", ["-quote", "-markdown", "-tabs", "-csv", "-line"])
def test_modes_of_sqlite3_print_as_in_sqlite3(mode: str) -> None:
    sql = "SELECT 1 AS a, 'it''s' AS b, NULL AS n, -7 AS neg UNION ALL SELECT 22, 'hello world', 3, 'x'"
    theirs, ours = both([mode, "-header", ":memory:", sql])
    assert ours == theirs
    theirs, ours = both([":memory:", f".mode {mode[1:]}", sql])
    assert ours == theirs.replace(b"\r\n", b"\n")  # sqlite3's .mode csv (not -csv) ends rows with CRLF


def test_box_mode_never_breaks_an_id(api: FakeOpenAI) -> None:
    job = job_with_checkpoints(api, 3)
    sql = f"SELECT id, fine_tuned_model_checkpoint, metrics FROM job_checkpoints('{job}')"
    result = run([":memory:", ".mode box --width 50", sql], api)
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert len({len(line) for line in lines}) == 1  # a table, wider than 50 where the values need it
    for checkpoint in api.state.checkpoints[job]:
        for value in (checkpoint["id"], checkpoint["fine_tuned_model_checkpoint"]):
            assert any(value in line for line in lines), value


def test_box_is_the_default_on_a_terminal_and_keeps_ids_whole(api: FakeOpenAI, tmp_path: Path) -> None:
    job = job_with_checkpoints(api, 2)
    shell = Terminal([":memory:"], terminal_environment(api, tmp_path), columns=60)
    try:
        shell.expect("openai-vtab> ")
        shell.send(f"SELECT id, fine_tuned_model_checkpoint, created_at FROM job_checkpoints('{job}');\n")
        screen = shell.expect("openai-vtab> ")
        shell.send(".quit\n")
        assert shell.wait(timeout=10) == 0
    finally:
        shell.close()
    assert "│" in screen
    for checkpoint in api.state.checkpoints[job]:
        for value in (checkpoint["id"], checkpoint["fine_tuned_model_checkpoint"]):
            assert value in screen, value


def test_once_sends_the_next_output_to_a_file_or_a_command(tmp_path: Path) -> None:
    stdin = (
        ".once first.txt\nSELECT 1; SELECT 2;\nSELECT 3;\n"  # the whole next SQL text, then back
        ".once |sort -r > sorted.txt\nSELECT 'a' UNION ALL SELECT 'c' UNION ALL SELECT 'b';\n"
        ".once blob.bin\nSELECT x'00ff41';\n"
        ".once --bom bom.csv\n.mode csv\n"  # a dot-command is the next line too: it takes nothing
    )
    result = run([":memory:"], None, stdin=stdin)
    assert (result.returncode, result.stdout, result.stderr) == (0, "3\n", "")
    assert (tmp_path / "first.txt").read_text() == "1\n2\n"
    assert (tmp_path / "sorted.txt").read_text() == "c\nb\na\n"
    assert (tmp_path / "blob.bin").read_bytes() == b"\x00\xffA\n"
    assert (tmp_path / "bom.csv").read_bytes() == b"\xef\xbb\xbf"


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (".once -e", "Error: once -e (an editor or a spreadsheet) is not supported: give a FILE or |COMMAND"),
        (".once", "Error: once takes one FILE, or |COMMAND"),
        (
            ".output |cat",
            "Error: output |COMMAND is not supported: use .once |COMMAND before each statement, or a file",
        ),
    ],
)
def test_once_and_output_refuse_what_they_cannot_do(tmp_path: Path, command: str, error: str) -> None:
    result = run([":memory:", command, "SELECT 1"], None)
    assert (result.returncode, result.stdout) == (1, "")  # as sqlite3: what follows a failure does not run
    assert result.stderr.splitlines() == [error]
    assert list(tmp_path.iterdir()) == []  # apsw's .output would have created a file named "|cat"


def test_an_output_file_named_on_the_command_line_is_written(tmp_path: Path) -> None:
    # As sqlite3: the file holds the rows once the shell exits (it used to stay empty, never flushed).
    result = run([":memory:", f".output {tmp_path / 'o1.txt'}", "SELECT 1"], None)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert (tmp_path / "o1.txt").read_text() == "1\n"


# -- opening the database -----------------------------------------------------------------------------------


@needs_sqlite3
def test_readonly_refuses_writes_as_sqlite3_while_the_openai_tables_work(api: FakeOpenAI, tmp_path: Path) -> None:
    api.add_job()
    api.add_job()
    path = database(tmp_path / "mine.db")
    before = path.read_bytes()
    write = "INSERT INTO experiments VALUES ('ftjob-2', 'second');\n"
    theirs = subprocess.run([STOCK_SQLITE3, "-readonly", str(path)], input=write, capture_output=True, text=True)
    read = "SELECT count(*) FROM experiments;\nSELECT count(*) FROM fine_tuning_jobs;\n"
    ours = run(["-readonly", str(path)], api, stdin=write + read)
    assert theirs.returncode == ours.returncode == 1
    assert "attempt to write a readonly database" in theirs.stderr
    assert ours.stderr == "Error near line 1: attempt to write a readonly database\n"
    assert ours.stdout == f"1\n{len(api.state.jobs)}\n"
    assert path.read_bytes() == before
    writable = run([str(path), write], api)
    assert (writable.returncode, writable.stderr) == (0, "")


def test_readonly_does_not_create_a_missing_database(tmp_path: Path) -> None:
    result = run(["-readonly", "missing.db", "SELECT 1"], None)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == 'Error: unable to open database "missing.db": unable to open database file\n'
    assert not (tmp_path / "missing.db").exists()


def test_open_readonly(api: FakeOpenAI, tmp_path: Path) -> None:
    path = database(tmp_path / "mine.db")
    queries = ["SELECT count(*) FROM experiments", "DELETE FROM experiments", "SELECT count(*) FROM experiments"]
    result = run([":memory:", f".open --readonly {path}", *queries], api)
    assert result.returncode == 1
    assert result.stdout == "1\n"  # the failed DELETE ends the arguments, as in sqlite3
    assert result.stderr == "Error: attempt to write a readonly database\n"


# -- looking around -----------------------------------------------------------------------------------------


@needs_sqlite3
def test_tables_lists_yours_as_sqlite3_then_the_openai_tables(api: FakeOpenAI, tmp_path: Path) -> None:
    path = database(tmp_path / "mine.db")
    args = [str(path), "CREATE TEMP TABLE scratch(x)", "ATTACH ':memory:' AS aux", "CREATE TABLE aux.other(y)"]
    theirs, ours = both([*args, ".tables"])
    own, openai = ours.decode().split(HEADING + "\n")
    assert own.splitlines() == [line.rstrip() for line in theirs.decode().splitlines()]
    assert sorted(openai.split()) == OPENAI_NAMES


def test_tables_with_a_pattern_matches_the_openai_names_and_their_aliases(api: FakeOpenAI) -> None:
    result = run([":memory:", ".tables job%", ".tables %models"], api)
    assert (result.returncode, result.stderr) == (0, "")
    first, second = result.stdout.split(HEADING + "\n")[1:]
    assert first.split() == sorted(t.name for t in TABLES if t.name.startswith("job"))
    assert second.split() == ["models", "openai_models"]


def test_tables_names_the_alias_of_an_openai_table_yours_hides(api: FakeOpenAI) -> None:
    result = run([":memory:", "CREATE TABLE models(id)", ".tables"], api)
    assert result.returncode == 0
    own, openai = result.stdout.split(HEADING + "\n")
    assert own.split() == ["models"]
    assert "openai_models" in openai.split()
    assert "models" not in openai.split()


def test_schema_of_an_openai_table_is_its_declaration_with_the_hidden_keys(api: FakeOpenAI) -> None:
    result = run([":memory:", ".schema job_checkpoints", ".schema openai_requests"], api)
    assert (result.returncode, result.stderr) == (0, "")
    heading, checkpoints, _, requests = result.stdout.splitlines()
    assert heading == HEADING
    table = next(t for t in TABLES if t.name == "job_checkpoints")
    declared = [f"{c.name} {c.sql_type}" for c in table.columns] + [f"{k} TEXT HIDDEN" for k in table.keys]
    assert checkpoints == f"CREATE TABLE job_checkpoints({', '.join(declared)});"
    # The statement is valid SQL that declares the same columns.
    db = apsw.Connection(":memory:")
    db.execute(requests)
    assert [row[1] for row in db.execute("PRAGMA table_info(openai_requests)")][:3] == ["seq", "at", "method"]


def test_schema_alone_is_the_database_only_as_in_sqlite3(api: FakeOpenAI, tmp_path: Path) -> None:
    path = database(tmp_path / "mine.db")
    result = run([str(path), ".schema"], api)
    assert (result.returncode, result.stderr) == (0, "")
    assert "CREATE TABLE experiments" in result.stdout
    assert HEADING not in result.stdout
    assert "job_checkpoints" not in result.stdout


@needs_sqlite3
@pytest.mark.parametrize("args", [[".indexes"], [".indexes experiments"], [".indexes %long%"]])
def test_indexes_as_in_sqlite3(tmp_path: Path, args: list[str]) -> None:
    path = database(tmp_path / "mine.db")
    theirs, ours = both([str(path), *args])
    assert ours.decode().splitlines() == [line.rstrip() for line in theirs.decode().splitlines()]


# -- versions and leaving -------------------------------------------------------------------------------------


def test_version_names_openai_vtab_sqlite_and_apsw() -> None:
    flag = run(["-version"], None)
    assert (flag.returncode, flag.stderr) == (0, "")
    assert (
        flag.stdout == f"openai-vtab {__version__} (SQLite {apsw.sqlite_lib_version()}, APSW {apsw.apsw_version()})\n"
    )
    dot = run([":memory:", ".version"], None)
    assert re.search(rf"^openai-vtab  {re.escape(__version__)} ", dot.stdout, re.MULTILINE)
    assert re.search(rf"^ +SQLite  {re.escape(apsw.sqlite_lib_version())} ", dot.stdout, re.MULTILINE)
    assert re.search(rf"^ +APSW  {re.escape(apsw.apsw_version())} ", dot.stdout, re.MULTILINE)


@pytest.mark.parametrize("command", [".quit", ".exit"])
def test_quit_and_exit_end_the_input(command: str) -> None:
    result = run([":memory:"], None, stdin=f"SELECT 1;\n{command}\nSELECT 2;\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, "1\n", "")
