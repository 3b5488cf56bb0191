"""The ``openai-vtab`` command, run as a subprocess against the fake API on 127.0.0.1.

Each test starts the console script (or ``python -m openai_vtab``, or the stock sqlite3 CLI) with
OPENAI_API_KEY and OPENAI_BASE_URL pointing at the fake the test process runs, and checks stdout, stderr and
the exit status; expected rows come from the fake's own data. Two sessions run on a pseudo-terminal, for
what only an interactive user sees: the prompt, the progress line, Ctrl-C, the demo banner.
"""

from __future__ import annotations

import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from shell_helpers import (
    ANSI,
    SCRIPT,
    STOCK_SQLITE3,
    Terminal,
    environment,
    in_a_scratch_directory,  # noqa: F401 - an autouse fixture
    job_with_checkpoints,
    run,
    terminal_environment,
)

from openai_vtab.demo import populate
from openai_vtab.testing import FakeOpenAI


def steps(api: FakeOpenAI, job: str) -> list[int]:
    return sorted(c["step_number"] for c in api.state.checkpoints[job])


# -- batch use ----------------------------------------------------------------------------------------


def test_sql_arguments_print_rows_and_nothing_else_when_not_on_a_terminal(api: FakeOpenAI) -> None:
    jobs = [api.add_job(), api.add_job(status="failed"), api.add_job(status="running")]
    api.inject("hang", seconds=1.3, match="/fine_tuning/jobs")  # longer than the progress line's delay
    result = run(["-csv", ":memory:", "SELECT id, status FROM fine_tuning_jobs ORDER BY id"], api)
    assert result.returncode == 0
    assert result.stdout.splitlines() == sorted(f"{job['id']},{job['status']}" for job in jobs)
    assert result.stderr == ""


def test_init_then_cmd_then_sql_arguments_even_with_no_color(api: FakeOpenAI, tmp_path: Path) -> None:
    # apsw's own parser swallows every option as -nocolour while NO_COLOR is set.
    job = job_with_checkpoints(api, 4)
    init = tmp_path / "init.sql"
    init.write_text("CREATE TEMP TABLE wanted(job_id TEXT);\n")
    result = run(
        [
            "-init",
            str(init),
            "-cmd",
            f"INSERT INTO wanted VALUES ('{job}')",
            "-cmd",
            ".mode csv",
            ":memory:",
            "SELECT c.step_number, 'x' FROM wanted w JOIN job_checkpoints c ON c.fine_tuning_job_id = w.job_id "
            "ORDER BY 1",
        ],
        api,
        env=environment(api, NO_COLOR="1"),
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [f"{step},x" for step in steps(api, job)]


def test_piped_input_goes_on_after_errors_with_one_line_each_and_exits_1(api: FakeOpenAI) -> None:
    api.add_job()
    api.add_job()
    stdin = (
        "SELECT x FROM t;\nSELEC 1;\nSELECT count(*)\n  FROM fine_tuning_jobs;\nSELECT * FROM nope;\nSELECT 'end';\n"
    )
    result = run(["-cmd", "CREATE TEMP TABLE t AS SELECT 'from -cmd' AS x"], api, stdin=stdin)
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["from -cmd", str(len(api.state.jobs)), "end"]
    assert result.stderr.splitlines() == [
        'Error near line 2: near "SELEC": syntax error',
        "Error near line 5: no such table: nope",
    ]


def test_an_error_names_the_line_its_statement_began_on(api: FakeOpenAI) -> None:
    result = run([":memory:"], api, stdin="SELECT 1;\nSELECT count(*)\n  FROM\n  nope;\n")
    assert result.stderr == "Error near line 2: no such table: nope\n"  # as sqlite3: line 2, not 4


@pytest.mark.parametrize("via", ["arguments", "stdin"])
def test_bail_stops_at_the_first_error(api: FakeOpenAI, via: str) -> None:
    statements = ["SELECT 'before'", "SELECT * FROM fine_tuning_jobs WHERE nope", "SELECT 'after'"]
    if via == "arguments":
        result = run(["-bail", ":memory:", *statements], api)
    else:
        result = run(["-bail", ":memory:"], api, stdin=";\n".join(statements) + ";\n")
    assert result.returncode == 1
    assert result.stdout == "before\n"
    assert len(result.stderr.splitlines()) == 1
    assert "no such column: nope" in result.stderr
    assert api.requests == []


def test_read_goes_on_after_an_error_names_the_file_and_line_and_stops_there(api: FakeOpenAI, tmp_path: Path) -> None:
    script = tmp_path / "report.sql"
    script.write_text("SELECT 'one';\n\nSELECT * FROM nope;\nSELECT count(*) FROM fine_tuning_jobs;\n")
    api.add_job()
    result = run([":memory:", f".read {script}", "SELECT 'after'"], api)
    assert result.returncode == 1
    # As sqlite3: the file goes on after its failed statement, the arguments after the file do not.
    assert result.stdout.splitlines() == ["one", str(len(api.state.jobs))]
    assert result.stderr.splitlines() == [f"Error near line 3 of {script}: no such table: nope"]


def test_missing_key_is_one_line_naming_openai_api_key(api: FakeOpenAI) -> None:
    env = environment(None, OPENAI_BASE_URL=api.base_url)
    result = run([":memory:", "SELECT count(*) FROM fine_tuning_jobs", "SELECT 'next'"], None, env=env)
    assert result.returncode == 1
    assert result.stdout == ""  # as sqlite3, the SQL arguments after a failed one do not run
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: ")
    assert "OPENAI_API_KEY" in line
    assert api.requests == []


@pytest.mark.parametrize("args", [["--api-key", "sk-proj-secret-1234567890"], ["--api-key=sk-proj-secret-1234567890"]])
def test_a_key_on_the_command_line_is_refused_without_echoing_it(args: list[str]) -> None:
    result = run([*args, ":memory:", "SELECT 1"], None)
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "OPENAI_API_KEY" in line
    assert "secret" not in line


def test_an_unknown_job_warns_in_one_plain_line_per_statement(api: FakeOpenAI) -> None:
    sql = "SELECT count(*) FROM job_checkpoints('ftjob-nosuchjob')"
    result = run([":memory:", sql, sql], api)
    assert result.returncode == 0  # a warning is not a failure
    assert result.stdout == "0\n0\n"
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("warning: job_checkpoints: no rows for unknown")
        assert "ftjob-nosuchjob" in line
        assert "Warning:" not in line
        assert ".py:" not in line


def test_every_connection_the_shell_uses_has_the_tables(api: FakeOpenAI, tmp_path: Path) -> None:
    api.add_job()
    first, second, third = (tmp_path / name for name in ("first.db", "second.db", "third.db"))
    query = "SELECT count(*), (SELECT file FROM pragma_database_list WHERE name = 'main') FROM fine_tuning_jobs"
    result = run(
        [
            str(first),
            query,
            f".open {second}",
            query,
            f".py shell.adopted = apsw.Connection({str(third)!r})",  # opened behind the shell's back
            ".connection 2",
            query,
            ".connection 0",
            query,
        ],
        api,
    )
    assert (result.returncode, result.stderr) == (0, "")
    count = len(api.state.jobs)
    assert result.stdout.splitlines() == [f"{count}|{path}" for path in (first, second, third, first)]


def test_openai_command_shows_each_setting_masked_with_its_source(api: FakeOpenAI) -> None:
    env = environment(api, OPENAI_ORG_ID="org-from-env", OPENAI_PROJECT_ID="proj_from_env")
    result = run(
        ["--organization", "org-from-option", ":memory:", ".openai", "SELECT count(*) FROM fine_tuning_jobs", ".help"],
        api,
        env=env,
    )
    assert result.returncode == 0
    assert re.search(r"^\.openai +Show the OpenAI API settings", result.stderr, flags=re.MULTILINE)  # .help
    settings = {
        m[1]: (m[2], m[3]) for m in re.finditer(r"^(\w+) +(\S+) +\((\S+)\)$", result.stdout, flags=re.MULTILINE)
    }
    assert settings["api_key"] == (f"sk-...{api.api_key[-4:]}", "OPENAI_API_KEY")
    assert settings["base_url"] == (api.base_url, "OPENAI_BASE_URL")
    assert settings["organization"] == ("org-from-option", "--organization")
    assert settings["project"] == ("proj_from_env", "OPENAI_PROJECT_ID")
    assert api.api_key not in result.stdout
    assert api.requests[0].headers["openai-organization"] == "org-from-option"


@pytest.mark.parametrize(("args", "status"), [(["--no-such-option"], 1), ([":memory:", ".exit 3"], 3)])
def test_exit_status(args: list[str], status: int) -> None:
    result = run(args, None)
    assert result.returncode == status
    assert len(result.stderr.splitlines()) == (status == 1)


# -- the IN hint and the cache ------------------------------------------------------------------------

JOIN = "SELECT count(*) FROM my_experiments e JOIN job_checkpoints c ON c.fine_tuning_job_id = e.job_id"
IN_FORMS = {
    "in": "SELECT count(*) FROM job_checkpoints WHERE fine_tuning_job_id IN (SELECT job_id FROM my_experiments)",
    # The README's form for when the rows must be joined back.
    "in-then-join": "SELECT count(*) FROM job_checkpoints c JOIN my_experiments e ON e.job_id = c.fine_tuning_job_id "
    "WHERE c.fine_tuning_job_id IN (SELECT job_id FROM my_experiments)",
}


def hint(keys: int, workers: int = 8) -> str:
    """The shell's one-time hint, as it reads after a join that fetched ``keys`` checkpoint lists one by one."""
    return (
        f"hint: this statement fetched {keys} keys of job_checkpoints one at a time (a join drives the table row "
        "by row);\n"
        f"hint: WHERE fine_tuning_job_id IN (SELECT ...) fetches up to {workers} at once (README: Joins and IN lists)\n"
    )


def experiments(api: FakeOpenAI, count: int) -> tuple[list[str], list[str]]:
    """``count`` jobs with 3 checkpoints each, and the -cmd arguments of a temp table my_experiments naming them."""
    jobs = [job_with_checkpoints(api, 3) for _ in range(count)]
    values = ", ".join(f"('{job}')" for job in jobs)
    return jobs, ["-cmd", f"CREATE TEMP TABLE my_experiments(job_id TEXT); INSERT INTO my_experiments VALUES {values}"]


def test_a_join_over_many_keys_hints_at_in_once_per_session(api: FakeOpenAI) -> None:
    jobs, setup = experiments(api, 6)
    # With the cache off, each run of the join fetches all 6 jobs one by one again: it qualifies each time.
    result = subprocess.run(
        [str(SCRIPT), "--cache-ttl", "0", *setup, ":memory:", f"SELECT 'first'; {JOIN}; SELECT 'next'; {JOIN}"],
        input=f"{JOIN};\n",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, to see where the hint falls
        text=True,
        env=environment(api),
        timeout=60,
    )
    assert result.returncode == 0
    assert result.stdout == f"first\n18\n{hint(6)}next\n18\n"  # right after the statement that earned it
    assert len(api.requests_to("checkpoints")) == 2 * len(jobs)


def test_the_hint_comes_after_the_error_of_a_failed_join(api: FakeOpenAI) -> None:
    jobs, setup = experiments(api, 6)
    api.fail(400, match=jobs[-1])  # not retried: the join fails at its last key
    result = subprocess.run(
        [str(SCRIPT), *setup, ":memory:", f"{JOIN} ORDER BY e.rowid"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment(api),
        timeout=60,
    )
    assert result.returncode == 1
    error, *hints = result.stdout.splitlines(keepends=True)
    assert error.startswith("Error: job_checkpoints: ")
    assert "".join(hints) == hint(6)


@pytest.mark.parametrize("form", IN_FORMS)
def test_in_over_the_same_keys_gives_no_hint(api: FakeOpenAI, form: str) -> None:
    jobs, setup = experiments(api, 6)
    result = run([*setup, ":memory:", IN_FORMS[form]], api)
    assert (result.returncode, result.stdout, result.stderr) == (0, "18\n", "")
    assert len(api.requests_to("checkpoints")) == len(jobs)


def test_the_hint_counts_the_keys_of_the_table_it_names(api: FakeOpenAI) -> None:
    _, setup = experiments(api, 6)
    sql = (
        "SELECT count(*) FROM my_experiments e JOIN job_checkpoints c ON c.fine_tuning_job_id = e.job_id "
        "JOIN checkpoint_permissions p ON p.fine_tuned_model_checkpoint = c.fine_tuned_model_checkpoint"
    )
    result = run(["--cache-ttl", "0", *setup, ":memory:", sql], api)
    assert result.returncode == 0
    # Six scans of job_checkpoints, keyed by a table of the user's own; checkpoint_permissions, keyed by
    # job_checkpoints (18 scans), is read ahead and never counted.
    assert "hint: this statement fetched 6 keys of job_checkpoints one at a time" in result.stderr
    assert len(api.requests_to("permissions")) == 18


def test_a_join_between_our_own_tables_reads_ahead_and_gives_no_hint(api: FakeOpenAI) -> None:
    job = job_with_checkpoints(api, 6)
    sql = (
        f"SELECT count(*) FROM job_checkpoints('{job}') c "
        "JOIN checkpoint_permissions p ON p.fine_tuned_model_checkpoint = c.fine_tuned_model_checkpoint"
    )
    result = run(["--cache-ttl", "0", ":memory:", sql], api)
    assert (result.returncode, result.stdout, result.stderr) == (0, "0\n", "")
    assert len(api.requests_to("permissions")) == 6  # each checkpoint once, five of them read ahead


def test_a_join_over_fewer_than_a_handful_of_keys_gives_no_hint(api: FakeOpenAI) -> None:
    _, setup = experiments(api, 4)
    result = run(["--cache-ttl", "0", *setup, ":memory:", JOIN, JOIN], api)
    assert (result.returncode, result.stdout, result.stderr) == (0, "12\n12\n", "")


def test_a_join_answered_from_the_cache_gives_no_hint(api: FakeOpenAI) -> None:
    jobs, setup = experiments(api, 6)
    result = run([*setup, ":memory:", IN_FORMS["in"], JOIN], api)  # IN fills the cache; the join costs nothing
    assert (result.returncode, result.stdout, result.stderr) == (0, "18\n18\n", "")
    assert len(api.requests_to("checkpoints")) == len(jobs)


@pytest.mark.parametrize(
    ("args", "fetches", "ttl", "source"),
    [
        ([], 1, "300 s", "default"),
        (["--cache-ttl", "0"], 2, "off", "--cache-ttl"),
        (["--cache-ttl=0.5"], 1, "0.5 s", "--cache-ttl"),
    ],
)
def test_cache_ttl_sets_how_long_answers_are_reused(
    api: FakeOpenAI, args: list[str], fetches: int, ttl: str, source: str
) -> None:
    job = job_with_checkpoints(api, 3)
    query = f"SELECT count(*) FROM job_checkpoints('{job}')"
    result = run([*args, ":memory:", query, query, ".openai"], api)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("3\n3\n")
    assert len(api.requests_to("checkpoints")) == fetches
    assert re.search(rf"^cache_ttl +{re.escape(ttl)} +\({source}\)$", result.stdout, flags=re.MULTILINE)
    requests = "1 request" if fetches == 1 else f"{fetches} requests"  # never "1 requests"
    assert re.search(rf"^fetched +{requests}, ", result.stdout, flags=re.MULTILINE)


@pytest.mark.parametrize("value", ["-1", "soon", "inf", "nan"])
def test_cache_ttl_must_be_a_number_of_seconds(api: FakeOpenAI, value: str) -> None:
    result = run(["--cache-ttl", value, ":memory:", "SELECT count(*) FROM fine_tuning_jobs"], api)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"Error: --cache-ttl takes a number of seconds (0 turns the cache off), not {value!r}\n"
    assert api.requests == []


def test_the_sqlite3_loader_passes_cache_ttl_on() -> None:
    result = run(["--demo", "--cache-ttl", "0", "--sqlite3-loader", ":memory:", "models"], None)
    assert (result.returncode, result.stderr) == (0, "")
    assert " --demo --cache-ttl=0 --sqlite3-rows models " in result.stdout


def test_timeout_and_retries_are_shell_options(api: FakeOpenAI) -> None:
    result = run(["--timeout", "5", "--max-retries=1", ":memory:", ".openai"], api)
    assert result.returncode == 0
    assert re.search(r"^timeout +5 s +\(--timeout\)$", result.stdout, re.MULTILINE)
    assert re.search(r"^max_retries +1 +\(--max-retries\)$", result.stdout, re.MULTILINE)
    job = job_with_checkpoints(api, 1)
    api.fail(500, times=5)
    failed = run(["--max-retries", "0", ":memory:", f"SELECT * FROM job_checkpoints('{job}')"], api)
    assert "gave up after 1 attempt(s)" in failed.stderr
    bad = run(["--timeout", "soon", ":memory:", "SELECT 1"], api)
    assert (bad.returncode, bad.stderr) == (1, "Error: timeout must be a number, not 'soon'\n")


def test_help_documents_cache_ttl() -> None:
    result = run(["-help"], None)
    assert re.search(r"^ +--cache-ttl SECONDS +reuse API answers", result.stdout + result.stderr, re.MULTILINE)


# -- demo mode ----------------------------------------------------------------------------------------

README_QUERY = (
    "SELECT j.model, c.step_number, c.full_valid_loss FROM fine_tuning_jobs j JOIN job_checkpoints c "
    "ON c.fine_tuning_job_id = j.id WHERE j.status = 'succeeded' ORDER BY c.full_valid_loss LIMIT 5"
)


@pytest.fixture(scope="module")
def sample() -> FakeOpenAI:
    """The demo's sample organization, for expectations (never started: its data is all that is read)."""
    api = FakeOpenAI()
    populate(api)
    return api


def test_demo_runs_the_readme_query_without_any_openai_setting(sample: FakeOpenAI) -> None:
    result = run(["--demo", "-header", "-column", ":memory:", README_QUERY], None)
    assert result.returncode == 0
    # No banner (not a terminal), and no IN hint: the join is between two of the package's tables, read ahead.
    assert result.stderr == ""
    header, rule, *rows = result.stdout.splitlines()
    assert header.split() == ["model", "step_number", "full_valid_loss"]
    assert set(rule.replace(" ", "")) == {"-"}
    state = sample.state
    expected = sorted(
        (c["metrics"]["full_valid_loss"], state.jobs[job]["model"], c["step_number"])
        for job, checkpoints in state.checkpoints.items()
        if state.jobs[job]["status"] == "succeeded"
        for c in checkpoints
    )[:5]
    # Whole model names: apsw's own column mode would cut them to 10 characters.
    assert [row.split() for row in rows] == [[model, str(step), str(loss)] for loss, model, step in expected]


def test_demo_ignores_openai_variables_meant_for_the_real_api(sample: FakeOpenAI) -> None:
    env = environment(
        None, OPENAI_API_KEY="sk-real-key-never-sent-0000", OPENAI_BASE_URL="http://127.0.0.1:9/v1", OPENAI_ORG_ID="o"
    )
    result = run(["--demo", ":memory:", "SELECT count(*) FROM fine_tuning_jobs", ".openai"], None, env=env)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines()[0] == str(len(sample.state.jobs))
    assert "sk-real" not in result.stdout
    assert "127.0.0.1:9/" not in result.stdout
    assert re.search(r"^organization +\(not set\)", result.stdout, flags=re.MULTILINE)


def test_python_dash_m_is_the_same_program(sample: FakeOpenAI) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "openai_vtab",
            "--demo",
            "-cmd",
            ".mode csv",
            ":memory:",
            "SELECT 'jobs', count(*) FROM fine_tuning_jobs",
        ],
        capture_output=True,
        text=True,
        input="",
        env=environment(None),
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, f"jobs,{len(sample.state.jobs)}\n", "")


def test_a_last_statement_without_its_semicolon_runs_as_in_sqlite3(api: FakeOpenAI, tmp_path: Path) -> None:
    api.add_job()
    piped = run([":memory:"], api, stdin="SELECT 1;\nSELECT count(*) FROM fine_tuning_jobs -- no semicolon")
    assert (piped.returncode, piped.stdout, piped.stderr) == (0, "1\n1\n", "")
    (tmp_path / "x.sql").write_text("SELECT 2;\nSELECT 3\n")
    read = run([":memory:", f".read {tmp_path / 'x.sql'}"], api)
    assert (read.returncode, read.stdout, read.stderr) == (0, "2\n3\n", "")


@pytest.mark.parametrize("how", ["stdin", "arguments"])
def test_quit_after_a_failure_keeps_exit_status_1(api: FakeOpenAI, how: str) -> None:
    if how == "stdin":
        result = run([":memory:"], api, stdin="SELECT * FROM nope;\n.quit\n")
    else:
        result = run([":memory:", "SELECT * FROM nope", ".quit"], api)
    assert result.returncode == 1
    assert result.stderr.count("no such table: nope") == 1


def test_options_may_follow_the_database_name_as_in_sqlite3(api: FakeOpenAI) -> None:
    result = run([":memory:", "-header", "-cmd", "SELECT 2 AS b", "SELECT 1 AS a"], api)
    assert (result.returncode, result.stdout, result.stderr) == (0, "b\n2\na\n1\n", "")


def test_a_reader_that_goes_away_ends_the_shell_quietly(api: FakeOpenAI) -> None:
    job = job_with_checkpoints(api, 300)
    sql = f"SELECT * FROM job_checkpoints('{job}')"
    shell = subprocess.Popen(
        [str(SCRIPT), ":memory:", sql, sql, sql],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(api),
    )
    assert shell.stdout is not None and shell.stdout.readline()
    shell.stdout.close()  # as `| head -1` does
    _, errors = shell.communicate(timeout=30)
    assert errors == b""  # no "Broken pipe" error per remaining statement


def test_a_failed_open_keeps_the_connection_that_works(api: FakeOpenAI, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir.db"
    stdin = f"CREATE TEMP TABLE t(x); INSERT INTO t VALUES (7);\n.open {missing}\nSELECT x FROM t;\n"
    result = run([":memory:"], api, stdin=stdin)
    assert (result.returncode, result.stdout) == (1, "7\n")
    assert result.stderr == f'Error near line 2: unable to open database "{missing}": unable to open database file\n'


SECRET = "sk-proj-SECRET-abcdef123456789"


@pytest.mark.parametrize("option", ["--OPENAI_API_KEY", "--openai-api-key", "--API-KEY", "--admin-key", "--token"])
def test_options_that_look_like_keys_are_refused_without_echo(api: FakeOpenAI, option: str) -> None:
    result = run([f"{option}={SECRET}", ":memory:", "SELECT 1"], api)
    assert result.returncode == 1
    assert "never taken from the command line" in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_unknown_options_never_echo_their_value(api: FakeOpenAI) -> None:
    result = run([f"--whatever={SECRET}", ":memory:", "SELECT 1"], api)
    assert (result.returncode, result.stderr) == (1, "Error: Unrecognized argument 'whatever=...'\n")


def test_a_key_with_a_line_ending_is_trimmed_and_never_shown(api: FakeOpenAI) -> None:
    api.add_job()
    env = environment(api, OPENAI_API_KEY=api.api_key + "\r\n")
    result = run([":memory:", "SELECT count(*) FROM fine_tuning_jobs"], None, env=env)
    assert (result.returncode, result.stdout, result.stderr) == (0, "1\n", "")


def test_settings_with_control_characters_fail_clearly(api: FakeOpenAI) -> None:
    env = environment(api, OPENAI_ORG_ID="org-x\x01", OPENAI_API_KEY="sk-test-\x07-SECRET-0000")
    result = run([":memory:", "SELECT 1"], None, env=env)
    assert result.returncode == 1
    assert "holds characters an HTTP header cannot carry" in result.stderr
    assert "SECRET" not in result.stderr


# -- the stock sqlite3 CLI ----------------------------------------------------------------------------


@pytest.mark.skipif(STOCK_SQLITE3 is None, reason="the sqlite3 CLI is not installed (apt-get install sqlite3)")
def test_stock_sqlite3_imports_typed_rows_through_the_loader(api: FakeOpenAI, tmp_path: Path) -> None:
    tracked, other = job_with_checkpoints(api, 4), job_with_checkpoints(api, 3)
    database = tmp_path / "mine.db"
    with sqlite3.connect(database) as own:
        own.execute("CREATE TABLE tracked(job_id TEXT, note TEXT)")
        own.execute("INSERT INTO tracked VALUES (?, ?), (?, ?)", (tracked, 'it\'s "mine"', other, "not this one"))
    own.close()
    # Quotes, a newline and % in the query: all must survive the shell and sqlite3's dot-command quoting.
    query = (
        "ckpt=SELECT t.note, c.step_number, c.train_loss, c.valid_loss\n"
        "FROM tracked t JOIN job_checkpoints c ON c.fine_tuning_job_id = t.job_id WHERE t.note LIKE '%\"mine\"%'"
    )
    loader = run(["--sqlite3-loader", str(database), query], api)
    assert (loader.returncode, loader.stderr) == (0, "")
    (tmp_path / "load.sql").write_text(loader.stdout)
    assert api.requests == []  # generating the loader fetches nothing; the .import does
    result = subprocess.run(
        [STOCK_SQLITE3, str(database)],
        input=".read load.sql\n"
        "SELECT note, step_number, typeof(step_number), train_loss, typeof(train_loss), quote(valid_loss) FROM ckpt "
        "ORDER BY step_number;\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment(api),
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (0, "")
    rows = [line.split("|") for line in result.stdout.splitlines()]
    expected = [
        [
            'it\'s "mine"',
            str(c["step_number"]),
            "integer",
            str(c["metrics"]["train_loss"]),
            "real",
            str(c["metrics"].get("valid_loss", "NULL")),
        ]
        for c in sorted(api.state.checkpoints[tracked], key=lambda c: c["step_number"])
    ]
    assert rows == expected
    assert {r.keys for r in api.requests_to("checkpoints")} == {(tracked,)}


@pytest.mark.skipif(STOCK_SQLITE3 is None, reason="the sqlite3 CLI is not installed (apt-get install sqlite3)")
@pytest.mark.parametrize("bail", [True, False], ids=["bail", "no-bail"])
def test_stock_sqlite3_never_keeps_part_of_an_answer(api: FakeOpenAI, tmp_path: Path, bail: bool) -> None:
    job = job_with_checkpoints(api, 250)
    loader = run(["--sqlite3-loader", ":memory:", f"ckpt=SELECT id, step_number FROM job_checkpoints('{job}')"], api)
    (tmp_path / "load.sql").write_text(loader.stdout)
    api.fail(400, skip=1, match=job)  # the second page fails, after the first page's 100 rows were printed
    result = subprocess.run(
        [STOCK_SQLITE3, ":memory:"],
        input=(".bail on\n" if bail else "") + ".read load.sql\nSELECT 'rows', count(*) FROM ckpt;\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment(api),
        timeout=60,
    )
    assert len(api.requests) == 2
    assert "HTTP 400" in result.stderr and "openai-vtab could not load ckpt" in result.stderr
    if bail:
        assert (result.returncode, result.stdout) == (1, "")
    else:
        assert result.stdout == "rows|0\n"


def test_the_loader_refuses_more_than_one_statement(api: FakeOpenAI) -> None:
    result = run(["--sqlite3-loader", ":memory:", "x=SELECT 1; SELECT 2"], api)
    assert result.returncode == 1
    assert "x= needs exactly one SELECT statement" in result.stderr


LOADER_FAILURES = {
    "syntax": (["c=SELEC oops"], {}, '--sqlite3-loader: the query for c fails: near "SELEC": syntax error'),
    "unknown-table": (["nosuch"], {}, "--sqlite3-loader: no OpenAI table is called 'nosuch'"),
    "unknown-column": (["c=SELECT nope FROM models"], {}, "--sqlite3-loader: the query for c fails: no such column"),
    "setting": (["models"], {"OPENAI_BASE_URL": "not-a-url"}, "base URL 'not-a-url' (from OPENAI_BASE_URL) is not"),
}


@pytest.mark.skipif(STOCK_SQLITE3 is None, reason="the sqlite3 CLI is not installed (apt-get install sqlite3)")
@pytest.mark.parametrize("bail", [True, False], ids=["bail", "no-bail"])
@pytest.mark.parametrize("case", LOADER_FAILURES)
def test_stock_sqlite3_sees_a_loader_that_fails(api: FakeOpenAI, tmp_path: Path, case: str, bail: bool) -> None:
    specs, env, error = LOADER_FAILURES[case]
    loader = shlex.join(["openai-vtab", "--sqlite3-loader", "x.db", *specs])
    result = subprocess.run(
        [STOCK_SQLITE3, ":memory:"],
        input=(".bail on\n" if bail else "") + f".read \"|{loader}\"\nSELECT 'after';\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment(api, **env),
        timeout=60,
    )
    first, second = result.stderr.splitlines()
    assert first.startswith(f"Error: {error}")
    assert second.endswith(
        "no such table: openai-vtab --sqlite3-loader failed (the error is above); nothing was loaded"
    )
    # sqlite3 counts the error: .bail on stops there, and the exit status says so either way.
    assert (result.returncode, result.stdout) == (1, "" if bail else "after\n")
    assert api.requests == []


@pytest.mark.skipif(STOCK_SQLITE3 is None, reason="the sqlite3 CLI is not installed (apt-get install sqlite3)")
def test_stock_sqlite3_sees_rows_that_cannot_start(api: FakeOpenAI, tmp_path: Path) -> None:
    loader = run(["--sqlite3-loader", ":memory:", "models"], api)
    (tmp_path / "load.sql").write_text(loader.stdout)
    result = subprocess.run(
        [STOCK_SQLITE3, ":memory:"],
        input=".bail on\n.read load.sql\nSELECT 'after';\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment(api, OPENAI_BASE_URL="http://example.com/v1"),  # a setting the rows' command refuses
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines()[-1].endswith(
        "no such table: openai-vtab could not load models (the error is above); nothing was loaded"
    )


# -- on a terminal ------------------------------------------------------------------------------------


def test_interactive_session_prompt_settings_progress_and_ctrl_c(api: FakeOpenAI, tmp_path: Path) -> None:
    quick, slow = job_with_checkpoints(api, 150), job_with_checkpoints(api, 3)
    shell = Terminal([":memory:"], terminal_environment(api, tmp_path))
    try:
        shell.expect("openai-vtab> ")
        shell.send(f"SELECT count(*) FROM job_checkpoints('{quick}');\n")
        assert f" {len(api.state.checkpoints[quick])} " in shell.expect("openai-vtab> ")
        assert "fetching:" not in shell.raw  # a quick query shows no progress

        shell.send(".openai\n")
        settings = shell.expect("openai-vtab> ")
        assert re.search(rf"^api_key +sk-\.\.\.{api.api_key[-4:]} +\(OPENAI_API_KEY\)$", settings, re.MULTILINE)

        api.inject("hang", seconds=20, match=slow)
        shell.send(f"SELECT count(*) FROM job_checkpoints('{slow}');\n")
        shell.expect("fetching: 0 pages, 0 rows", timeout=5)
        interrupted = time.monotonic()
        shell.send("\x03")
        assert "^C" in shell.expect("openai-vtab> ", timeout=5)
        assert "\r\x1b[K" in shell.raw[shell.raw.rindex("fetching:") :]  # the progress line was erased

        shell.send(".quit\n")
        # The abandoned request still hangs on the server; the shell must not wait for it.
        assert shell.wait(timeout=10) == 0
        assert time.monotonic() - interrupted < 10
        assert api.api_key not in shell.raw
    finally:
        shell.close()


def _interrupted(script: Path, api: FakeOpenAI, ready: Callable[[], bool]) -> tuple[int, str, str]:
    """Run the shell on ``script``, send SIGINT once ``ready()``, and return (status, stdout, stderr)."""
    with script.open() as stdin:
        shell = subprocess.Popen(
            [str(SCRIPT), ":memory:"],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=script.parent,
            env=environment(api),
        )
        deadline = time.monotonic() + 10
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        shell.send_signal(signal.SIGINT)
        try:
            out, err = shell.communicate(timeout=15)
        finally:
            shell.kill()
    return shell.returncode, out, err


def test_ctrl_c_while_reading_a_pipe_reports_the_statement_and_exits_1_as_sqlite3(
    api: FakeOpenAI, tmp_path: Path
) -> None:
    slow = job_with_checkpoints(api, 3)
    api.inject("hang", seconds=20, match=slow)
    script = tmp_path / "slow.sql"
    script.write_text(f"SELECT count(*) FROM job_checkpoints('{slow}');\nSELECT 'after';\n")
    status, out, err = _interrupted(script, api, lambda: any(slow in r.keys for r in api.requests))
    # sqlite3 3.40 here: "Runtime error near line 1: interrupted (9)", nothing more read, exit status 1.
    assert (status, out, err) == (1, "", "Error near line 1: interrupted\n")


def test_ctrl_c_stops_a_long_local_statement_as_sqlite3(api: FakeOpenAI, tmp_path: Path) -> None:
    # Python runs no signal handler while SQLite steps through a local query: SQLite itself must be interrupted.
    started = tmp_path / "started"
    script = tmp_path / "endless.sql"
    script.write_text(
        f".output {started}\nSELECT 'started';\n.output stdout\n"
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r;\nSELECT 'after';\n"
    )

    def running() -> bool:
        # The file exists once the line before the endless statement ran; half a second later it is running.
        return started.exists() and time.sleep(0.5) is None

    status, out, err = _interrupted(script, api, running)
    assert (status, out, err) == (1, "", "Error near line 4: interrupted\n")


def test_demo_says_it_serves_sample_data_only_on_a_terminal(sample: FakeOpenAI, tmp_path: Path) -> None:
    shell = Terminal(["--demo"], terminal_environment(None, tmp_path))
    try:
        shell.expect("openai-vtab> ")
        assert f"Demo mode: sample data for {len(sample.state.jobs)} fine-tuning jobs" in ANSI.sub("", shell.raw)
        shell.send(".quit\n")
        assert shell.wait(timeout=10) == 0
    finally:
        shell.close()
