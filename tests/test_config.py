"""register(): settings from options and the environment, the missing-key error, the headers sent, and the
base URLs refused (a plain-http one only when a table is read)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import apsw
import pytest

import openai_vtab
from openai_vtab.config import DEFAULT_BASE_URL, Config, mask_key
from openai_vtab.testing import FakeOpenAI

SECRET = "sk-test-never-shown-abcdefghijklmnop-6789"
EVERY_WAY = "OPENAI_BASE_URL, base_url= in Python, --base-url in the shell"


def test_register_needs_no_key_and_no_network() -> None:
    db = apsw.Connection(":memory:")
    registration = openai_vtab.register(db)  # nothing listens at api.openai.com from here, and nothing is sent
    assert registration.config.api_key is None
    assert registration.config.base_url == DEFAULT_BASE_URL
    names = {row[0] for row in db.execute("SELECT name FROM pragma_module_list")}
    assert {"job_checkpoints", "fine_tuning_jobs"} <= names


def test_query_without_a_key_names_openai_api_key_and_sends_nothing(api: FakeOpenAI) -> None:
    db = apsw.Connection(":memory:")
    openai_vtab.register(db, base_url=api.base_url)
    with pytest.raises(
        openai_vtab.MissingAPIKeyError, match=r"^fine_tuning_jobs: no OpenAI API key: .*OPENAI_API_KEY"
    ) as caught:
        db.execute("SELECT * FROM fine_tuning_jobs").fetchall()
    assert isinstance(caught.value, openai_vtab.ConfigurationError)
    assert api.requests == []


def test_environment_supplies_every_setting(api: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", api.api_key)
    monkeypatch.setenv("OPENAI_BASE_URL", api.base_url)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_env")
    db = apsw.Connection(":memory:")
    registration = openai_vtab.register(db)
    db.execute("SELECT * FROM fine_tuning_jobs").fetchall()
    headers = api.requests[0].headers
    assert headers["authorization"] == f"Bearer {api.api_key}"
    assert headers["openai-organization"] == "org-env"
    assert headers["openai-project"] == "proj_env"
    assert headers["user-agent"].startswith(f"openai-vtab/{openai_vtab.__version__}")
    assert dict((name, source) for name, _, source in registration.config.describe()) == {
        "api_key": "OPENAI_API_KEY",
        "admin_api_key": "default",
        "base_url": "OPENAI_BASE_URL",
        "organization": "OPENAI_ORG_ID",
        "project": "OPENAI_PROJECT_ID",
        "timeout": "default",
        "max_retries": "default",
    }


def test_options_override_the_environment(api: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-wrong-key-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    db = apsw.Connection(":memory:")
    openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url, organization="org-option")
    db.execute("SELECT * FROM fine_tuning_jobs").fetchall()
    assert api.requests[0].headers["openai-organization"] == "org-option"
    assert "openai-project" not in api.requests[0].headers


def test_registration_is_per_connection(api: FakeOpenAI, connect: Callable[..., apsw.Connection]) -> None:
    other = apsw.Connection(":memory:")
    connect()
    with pytest.raises(apsw.SQLError, match="no such table: fine_tuning_jobs"):
        other.execute("SELECT * FROM fine_tuning_jobs")


def test_config_repr_and_describe_never_show_the_key() -> None:
    key = "sk-test-abcdefghijklmnopqrstuvwxyz1234"
    config = Config.resolve(api_key=key, environ={})
    assert key not in repr(config)
    assert key not in str(config.describe())
    assert ("api_key", "sk-...1234", "option") in config.describe()
    assert mask_key(key) == "sk-...1234"
    assert mask_key("short") == "..."
    assert mask_key(None) == "(not set)"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("base_url", "ftp://example.invalid", r"not an http\(s\) URL"),
        ("timeout", 0, "timeout must be a positive number"),
        ("max_retries", -1, "max_retries must be 0 or more"),
        ("max_workers", 0, "max_workers must be at least 1"),
    ],
)
def test_bad_settings_fail_at_register_time(option: str, value: object, message: str) -> None:
    with pytest.raises(openai_vtab.ConfigurationError, match=message):
        openai_vtab.register(apsw.Connection(":memory:"), **{option: value})


def test_every_error_is_exported_under_one_base() -> None:
    for name in openai_vtab.errors.__all__:
        obj = getattr(openai_vtab, name, None) or getattr(openai_vtab.errors, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and not issubclass(obj, Warning):
            assert issubclass(obj, openai_vtab.OpenAIVTabError), name
            assert getattr(openai_vtab, name) is obj, f"{name} is not importable from openai_vtab"


def test_surrounding_whitespace_is_trimmed_from_settings(api: FakeOpenAI) -> None:
    db = apsw.Connection(":memory:")
    config = openai_vtab.register(db, api_key=f" {api.api_key}\r\n", base_url=api.base_url + "\n").config
    assert (config.api_key, config.base_url) == (api.api_key, api.base_url)
    db.execute("SELECT * FROM fine_tuning_jobs").fetchall()
    assert api.requests[0].headers["authorization"] == f"Bearer {api.api_key}"


@pytest.mark.parametrize("option", ["api_key", "admin_api_key", "organization", "project"])
def test_settings_a_header_cannot_carry_fail_at_register_time(option: str) -> None:
    value = "sk-test-SECRET\x00-in-the-middle-0000" if option.endswith("api_key") else "ünïcode\tx"
    with pytest.raises(openai_vtab.ConfigurationError, match=f"{option} .* holds characters an HTTP header") as caught:
        openai_vtab.register(apsw.Connection(":memory:"), **{option: value})
    assert "SECRET" not in str(caught.value)


def test_describe_lists_named_settings_with_their_sources() -> None:
    config = Config.resolve(api_key=SECRET, environ={"OPENAI_ORG_ID": "org-env"})
    settings = {setting.name: setting for setting in config.describe()}
    assert list(settings) == [
        "api_key",
        "admin_api_key",
        "base_url",
        "organization",
        "project",
        "timeout",
        "max_retries",
    ]
    assert (settings["api_key"].value, settings["api_key"].source) == ("sk-...6789", "option")
    assert (settings["organization"].value, settings["organization"].source) == ("org-env", "OPENAI_ORG_ID")
    assert settings["timeout"] == ("timeout", "60 s", "default")  # still a plain (name, value, source) tuple


@pytest.mark.parametrize("url", ["not-a-url", "ftp://example.invalid/v1", "https:///v1"])
def test_a_base_url_that_is_no_url_names_every_way_to_set_it(url: str) -> None:
    with pytest.raises(openai_vtab.ConfigurationError) as caught:
        Config.resolve(environ={"OPENAI_BASE_URL": url})
    assert str(caught.value) == (
        f"base URL {url!r} (from OPENAI_BASE_URL) is not an http(s) URL: set it to something like "
        f"https://api.openai.com/v1 ({EVERY_WAY})"
    )


def test_the_shell_reports_a_base_url_that_is_no_url_before_running_anything() -> None:
    result = run_shell(["--base-url", "not-a-url", ":memory:", "SELECT 1"], {})
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "Error: base URL 'not-a-url' is not an http(s) URL: set it to something like https://api.openai.com/v1 "
        f"({EVERY_WAY})\n"
    )


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://api.example.com/v1", False),
        ("http://10.0.0.1/v1", False),
        ("http://192.168.1.10:8080/v1", False),
        ("http://127.0.0.1:8080/v1", True),
        ("http://127.9.9.9/v1", True),
        ("http://localhost:1234/v1", True),
        ("http://[::1]:1234/v1", True),
        ("https://api.example.com/v1", True),
    ],
)
def test_plain_http_to_a_remote_host_is_accepted_at_first_and_refused_for_the_key(url: str, allowed: bool) -> None:
    # The decision is made on the URL alone, before anything could be sent.
    config = Config.resolve(api_key=SECRET, base_url=url, environ={})
    if allowed:
        config.credential(table="models")
        return
    with pytest.raises(openai_vtab.ConfigurationError, match=r"^models: base URL .* clear text") as caught:
        config.credential(table="models")
    assert SECRET not in str(caught.value)
    Config.resolve(api_key=SECRET, base_url=url, allow_insecure_http=True, environ={}).credential()


@pytest.fixture
def proxy(api: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    """The fake as everyone's HTTP proxy: a request for a remote http URL would reach it, key and all."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{api.port}")
    return api


def test_plain_http_to_a_remote_host_runs_other_sql_and_sends_nothing_when_a_table_is_read(proxy: FakeOpenAI) -> None:
    db = apsw.Connection(":memory:")
    openai_vtab.register(db, api_key=SECRET, base_url="http://api.example.invalid/v1")
    assert db.execute("SELECT 1").fetchall() == [(1,)]
    with pytest.raises(openai_vtab.ConfigurationError) as caught:
        db.execute("SELECT * FROM models").fetchall()
    assert str(caught.value) == (
        "models: base URL 'http://api.example.invalid/v1' is plain http to a remote host, which would send the API "
        f"key in clear text, so nothing was sent: use https ({EVERY_WAY}), or pass allow_insecure_http=True to "
        "register() if you really mean it (the shell never allows it)"
    )
    assert proxy.requests == []
    # The control: allowed, the same request does travel, through the proxy, with the key.
    proxy.api_key = SECRET
    openai_vtab.register(db, api_key=SECRET, base_url="http://api.example.invalid/v1", allow_insecure_http=True)
    with pytest.raises(openai_vtab.NotFoundError):
        db.execute("SELECT * FROM models").fetchall()
    assert [request.headers["authorization"] for request in proxy.requests] == [f"Bearer {SECRET}"]


def test_the_shell_runs_sql_under_a_plain_http_base_url_and_refuses_only_the_tables(proxy: FakeOpenAI) -> None:
    env = {"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": "http://api.example.invalid/v1"}
    assert run_shell([":memory:", "SELECT 1 + 1"], env).stdout == "2\n"
    result = run_shell([":memory:", "SELECT count(*) FROM fine_tuning_jobs"], env)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(
        "Error: fine_tuning_jobs: base URL 'http://api.example.invalid/v1' (from OPENAI_BASE_URL) is plain http to a "
        "remote host"
    )
    assert SECRET not in result.stderr
    assert proxy.requests == []


def run_shell(args: list[str], settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m openai_vtab ARGS`` with only ``settings`` of the OPENAI_ variables set."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("OPENAI_")}
    return subprocess.run(
        [sys.executable, "-m", "openai_vtab", *args],
        env={**env, **settings},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
