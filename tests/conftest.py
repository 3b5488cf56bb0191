"""Shared fixtures: a fake OpenAI API on 127.0.0.1 and apsw connections registered against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import apsw
import pytest
from hypothesis import settings

import openai_vtab
from openai_vtab import vtab
from openai_vtab.testing import FakeOpenAI

# Four xdist workers on two cores (and CI machines under load) stretch single examples past hypothesis's 200 ms
# default deadline; the properties are about answers, not speed.
settings.register_profile("no-deadline", deadline=None)
settings.load_profile("no-deadline")


@pytest.fixture(autouse=True)
def _no_openai_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a developer's real settings."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def api() -> Iterator[FakeOpenAI]:
    """A running fake API with no data."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def connect(api: FakeOpenAI) -> Callable[..., apsw.Connection]:
    """Open a fresh connection registered against the fake; keyword options go to register()."""

    def make(path: str = ":memory:", **options: object) -> apsw.Connection:
        db = apsw.Connection(path, statementcachesize=0)
        options.setdefault("api_key", api.api_key)
        options.setdefault("base_url", api.base_url)
        openai_vtab.register(db, **options)
        return db

    return make


@pytest.fixture
def db(connect: Callable[..., apsw.Connection]) -> apsw.Connection:
    """A connection registered against the fake."""
    return connect()


@pytest.fixture
def filter_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    """The constraint arguments of every Filter call (spied on, not replaced)."""
    calls: list[tuple[object, ...]] = []
    original = vtab.Cursor.Filter

    def spy(self: vtab.Cursor, num: int, name: str, args: tuple[object, ...]) -> None:
        calls.append(tuple(args))
        original(self, num, name, args)

    monkeypatch.setattr(vtab.Cursor, "Filter", spy)
    return calls
