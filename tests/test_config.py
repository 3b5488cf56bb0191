"""register(): settings from options and the environment, the missing-key error, the headers sent."""

from __future__ import annotations

from collections.abc import Callable

import apsw
import pytest

import openai_vtab
from openai_vtab.config import DEFAULT_BASE_URL, Config, mask_key
from openai_vtab.testing import FakeOpenAI


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
    with pytest.raises(openai_vtab.MissingAPIKeyError, match="OPENAI_API_KEY") as caught:
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
