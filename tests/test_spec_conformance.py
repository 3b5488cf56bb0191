"""Every table's requests conform to the official OpenAPI spec, as judged by Steady, the spec-driven mock.

What this module proves:

* For every table in ``openai_vtab.TABLES`` (found generically, so new tables are covered without edits), the
  requests its SQL produces are valid for the spec ``../shared/openapi/openapi.yaml``: the path matches the
  table's own operation (also for ids with ``:``, ``/``, ``?`` and ``..`` in them), and query parameters
  (``limit``, ``after``, each column's ``query_param``) are declared and well typed. Covered: the table-valued
  form ``name('id')``, ``WHERE key = 'id'``, ``key IN (...)``, ``col = 'value'`` for each ``query_param``
  column, later pages (``after``), and one full page as the client requests it (``limit`` = page size).
* Steady judges each request: a request fails the test when Steady answers ``x-steady-request-valid`` other
  than ``true``, reports any diagnostic (``x-steady-error-count`` > 0, ``x-steady-error-N-*`` headers: this is
  where an undeclared query parameter shows up, with a 200 answer), or answers an error status. Our client does
  not expose response headers, so the tables talk to a small recording reverse proxy on 127.0.0.1 that forwards
  to Steady and keeps each request's target, status and headers. Steady's own JSON log (``--log-format json``)
  is read as a second witness: every request must appear there with no diagnostics.
* Negative controls show the detection works: an undeclared query parameter and ``limit=abc`` sent directly,
  and tables declared wrongly on purpose (an undeclared ``query_param``; a mistyped path, which the package
  turns into a mere "unknown key" warning with zero rows) are caught.
* Static facts from the spec about each table: its path is a GET operation, its ``query_param`` columns are
  declared, paged tables have ``limit``/``after`` and a page size within the documented range, unpaged ones
  no ``limit``, and each column's source field is documented for the resource.

Steady's data is generated, not stateful, so it may answer ``has_more: true`` forever. Queries are bounded
with ``LIMIT 3`` (no ORDER BY), which the package pushes down as the first page's ``limit``; at most three pages
per key are fetched. The proxy adds ``X-Steady-Seed`` derived from the request target so that successive
pages hold different ids (as a real server's would) instead of repeating one page; this changes only the
generated answer, never how the request is judged. For one query per paged table the proxy also rewrites
``has_more`` to true, so that the client sends its later-page requests (``after=<last id>``) for Steady to
judge. Paging correctness is tested against the stateful fake elsewhere, not here. Which requests each table
sent is printed (shown with ``-rP``) and kept as the test property ``requests``.

Skipped with a clear reason when the spec, node or Steady is absent. CI installs Steady in the repository root
with ``npm install @stdy/cli@0.22.2``; ``STEADY_BIN`` may point at another ``steady`` executable.
Nothing here talks to any host but 127.0.0.1.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import inspect
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import apsw
import pytest
import requests
from shared_spec import SPEC_PATH, require_spec

import openai_vtab
from openai_vtab import TABLES, Registration, Table, TableModule
from openai_vtab.client import Pager
from openai_vtab.paging import AFTER_CURSOR, CSV
from openai_vtab.tables import Column
from openai_vtab.writes import TableWriter

REPO = Path(__file__).resolve().parents[1]
STEADY_VERSION = "0.22.2"
START_TIMEOUT = 30.0
LOG_TIMEOUT = 5.0
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
# Ids that must stay one path segment: the client percent-encodes everything, and Steady must match the route.
AWKWARD_ID = "ft:gpt-4o-mini:org::x/../../models?limit=abc#frag"
# A unix time for the time ranges costs and usage require (2023-11-14).
SOME_TIME = 1_700_000_000

require_spec()

yaml = pytest.importorskip("yaml", reason="pyyaml is needed to read the spec: pip install -e '.[test]'")


# -- the spec -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """The loaded spec, with the few look-ups these tests need."""

    document: dict[str, Any]

    def at(self, pointer: str) -> Any:
        """The node at a JSON pointer (``#/a/b`` or ``/a/b``)."""
        node: Any = self.document
        for part in pointer.lstrip("#").lstrip("/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    def deref(self, node: Any) -> Any:
        """Follow local ``$ref`` until a node without one."""
        while isinstance(node, dict) and "$ref" in node:
            node = self.at(node["$ref"])
        return node

    def template(self, table_path: str) -> str | None:
        """The spec path a table's path stands for (placeholder names may differ), or None."""
        shape = _shape(table_path)
        matches = [p for p, item in self.document["paths"].items() if _shape(p) == shape and "get" in item]
        return matches[0] if matches else None

    def query_parameters(self, template: str) -> dict[str, dict[str, Any]]:
        """The query parameters GET ``template`` declares, by name."""
        item = self.document["paths"][template]
        params = [*item.get("parameters", []), *item["get"].get("parameters", [])]
        return {p["name"]: p for p in map(self.deref, params) if p.get("in") == "query"}

    def answer_schema(self, template: str) -> Any:
        """The schema of GET ``template``'s 200 answer."""
        content = self.deref(self.document["paths"][template]["get"]["responses"]["200"]["content"])
        return self.deref(content["application/json"]["schema"])

    def item_schema(self, template: str) -> Any:
        """The schema of one element of ``data`` in GET ``template``'s 200 answer."""
        return self.deref(self.answer_schema(template)["properties"]["data"]["items"])

    def declares(self, schema: Any, path: tuple[str, ...]) -> bool:
        """Whether ``path`` (property names) is declared in ``schema``, through $ref/allOf/anyOf/oneOf."""
        schema = self.deref(schema)
        if not path:
            return True
        if not isinstance(schema, dict):
            return False
        branches = [b for key in ("allOf", "anyOf", "oneOf") for b in schema.get(key, [])]
        if path[0] in schema.get("properties", {}) and self.declares(schema["properties"][path[0]], path[1:]):
            return True
        return any(self.declares(branch, path) for branch in branches)

    def example_text(self, template: str) -> str:
        """All example text of the operations on ``template`` (x-oaiMeta request/response examples)."""
        operations = [op for op in self.document["paths"][template].values() if isinstance(op, dict)]
        return json.dumps([op.get("x-oaiMeta", {}) for op in operations])


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


@pytest.fixture(scope="module")
def spec() -> Spec:
    """The spec, loaded once per module (the C YAML loader takes under a second)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return Spec(yaml.load(SPEC_PATH.read_text(encoding="utf-8"), Loader=loader))


# -- Steady and the recording proxy -----------------------------------------------------------------------------


def _steady_command() -> tuple[list[str] | None, str]:
    """The command that runs Steady, or None and why not."""
    chosen = os.environ.get("STEADY_BIN")
    if chosen and not Path(chosen).is_file():
        return None, f"STEADY_BIN={chosen} is not a file"
    candidates = [chosen, str(REPO / "node_modules" / ".bin" / "steady"), shutil.which("steady")]
    binary = next((c for c in candidates if c and Path(c).is_file()), None)
    if binary is None:
        return None, (
            f"Steady is not installed: run `npm install @stdy/cli@{STEADY_VERSION}` in {REPO}, or set STEADY_BIN"
        )
    with open(binary, "rb") as handle:
        start = handle.read(128)
    is_node_script = start.startswith(b"#!") and b"node" in start.split(b"\n", 1)[0]
    if is_node_script and shutil.which("node") is None:
        return None, f"{binary} is a node script and node is not on PATH"
    try:
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{binary} does not run: {exc}"
    if version.returncode != 0:
        return None, f"{binary} --version failed: {(version.stderr or version.stdout).strip()[:200]}"
    return [binary], version.stdout.strip()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Steady:
    """A running Steady process and its JSON log."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    version: str

    def log_requests(self) -> list[dict[str, Any]]:
        """The ``request`` entries of Steady's JSON log so far."""
        entries = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line still being written, or text that is not ours to judge
            if isinstance(entry, dict) and entry.get("type") == "request":
                entries.append(entry)
        return entries

    def log_problems(self, exchanges: list[Exchange]) -> list[str]:
        """What Steady's log says about these requests: every one must be logged, and without diagnostics."""
        wanted = Counter((ex.method, ex.target) for ex in exchanges)
        deadline = time.monotonic() + LOG_TIMEOUT
        while True:
            entries = self.log_requests()
            logged = Counter(
                (e["request"]["method"], e["request"]["path"] + e["request"].get("query", "")) for e in entries
            )
            missing = [f"{method} {target}" for (method, target), n in wanted.items() if logged[method, target] < n]
            if not missing:
                break
            if time.monotonic() > deadline:
                return [f"not in Steady's log after {LOG_TIMEOUT:g} s: {target}" for target in missing]
            time.sleep(0.05)
        problems = []
        for entry in entries:
            key = (entry["request"]["method"], entry["request"]["path"] + entry["request"].get("query", ""))
            for diagnostic in entry.get("diagnostics") or []:
                if key in wanted:
                    problems.append(
                        f"log: {key[0]} {key[1]}: {diagnostic.get('severity')} {diagnostic.get('code')} "
                        f"{diagnostic.get('requestPath')}: {diagnostic.get('message')}"
                    )
        return sorted(set(problems))


@pytest.fixture(scope="module")
def steady(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Steady]:
    """Steady serving the spec on 127.0.0.1, started once for the module and stopped at its end."""
    command, detail = _steady_command()
    if command is None:
        pytest.skip(detail)
    directory = tmp_path_factory.mktemp("steady")
    log_path, err_path = directory / "steady.log", directory / "steady.err"
    port = _free_port()
    # As the official SDKs run it: query arrays as group_by[]=a&group_by[]=b, objects as effective_at[gte]=X.
    formats = [
        f"--validator-{where}-{kind}-format=brackets" for where in ("query", "form") for kind in ("array", "object")
    ]
    argv = [*command, "--host", "127.0.0.1", "-p", str(port), "--log-format", "json", *formats, str(SPEC_PATH)]
    with open(log_path, "wb") as out, open(err_path, "wb") as err:
        # Its own session, so that teardown can stop the node wrapper and the binary it spawns, and nothing else.
        process = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
    server = Steady(process, port, log_path, detail)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"Steady exited with {process.returncode}: {err_path.read_text(errors='replace')[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"Steady did not listen on 127.0.0.1:{port} within {START_TIMEOUT:g} s")
                time.sleep(0.05)
        yield server
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)  # the group is the one start_new_session made for this process
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@dataclass(frozen=True)
class Exchange:
    """One request through the proxy: the raw target as the client sent it, and Steady's answer."""

    method: str
    target: str
    status: int
    headers: dict[str, str]

    def problems(self) -> list[str]:
        """Everything Steady objected to in this request (empty when it is valid and clean)."""
        found = []
        valid = self.headers.get("x-steady-request-valid")
        if valid != "true":
            found.append(f"x-steady-request-valid: {valid!r}")
        count = self.headers.get("x-steady-error-count", "0")
        if count != "0":
            found.append(f"x-steady-error-count: {count}")
        diagnostics: dict[str, dict[str, str]] = {}
        for name, value in self.headers.items():
            match = re.fullmatch(r"x-steady-error-(\d+)-(\w+)", name)
            if match:
                diagnostics.setdefault(match.group(1), {})[match.group(2)] = value
            elif name.startswith("x-steady-error") and name != "x-steady-error-count":
                found.append(f"{name}: {value}")
        for number in sorted(diagnostics, key=int):
            d = diagnostics[number]
            found.append(f"diagnostic {number}: {d.get('code')} {d.get('path')}: {d.get('message')}")
        if not 200 <= self.status < 300:
            found.append(f"HTTP {self.status}")
        return found

    @property
    def query(self) -> dict[str, str]:
        """The decoded query parameters of the target."""
        return dict(parse_qsl(urlsplit(self.target).query, keep_blank_values=True))

    def describe(self) -> str:
        """``GET /path?query -> status``, for messages and the record."""
        return f"{self.method} {self.target} -> {self.status}"


@dataclass
class RecordingProxy:
    """A reverse proxy on 127.0.0.1 that forwards to Steady and records each exchange."""

    upstream_port: int
    force_has_more: int = 0  # how many of the next 200 answers are made to say has_more=true
    exchanges: list[Exchange] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> RecordingProxy:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _proxy_handler(self))
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="steady-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def take(self) -> list[Exchange]:
        """The exchanges recorded since the last call."""
        with self.lock:
            taken, self.exchanges = self.exchanges, []
        return taken

    def forward(
        self, method: str, target: str, headers: list[tuple[str, str]], payload: bytes | None = None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        upstream_headers = {k: v for k, v in headers if k.lower() not in HOP_BY_HOP and k.lower() != "host"}
        if not any(k.lower() == "x-steady-seed" for k in upstream_headers):
            upstream_headers["X-Steady-Seed"] = str(zlib.crc32(target.encode()) % 1_000_000 + 1)
        connection = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        try:
            connection.request(method, target, body=payload, headers=upstream_headers)
            response = connection.getresponse()
            body = response.read()
            answer = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}]
            status = response.status
        finally:
            connection.close()
        exchange = Exchange(method, target, status, {k.lower(): v for k, v in answer})
        if self.force_has_more > 0 and status == 200:
            self.force_has_more -= 1
            answer, body = _with_has_more(answer, body)
        with self.lock:
            self.exchanges.append(exchange)
        return status, answer, body


def _with_has_more(headers: list[tuple[str, str]], body: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """The answer with ``has_more: true``, so that the client asks for the next page (sent as identity)."""
    encoding = next((v for k, v in headers if k.lower() == "content-encoding"), "identity")
    page = json.loads(gzip.decompress(body) if encoding == "gzip" else body)
    if isinstance(page, dict) and "has_more" in page:
        page["has_more"] = True
        if "next_page" in page:  # a fresh token each page, with the '=' padding real tokens have
            page["next_page"] = "page_" + base64.b64encode(os.urandom(4)).decode()
    return [(k, v) for k, v in headers if k.lower() != "content-encoding"], json.dumps(page).encode()


def _proxy_handler(proxy: RecordingProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._forward("GET")

        def do_POST(self) -> None:
            self._forward("POST")

        def do_DELETE(self) -> None:
            self._forward("DELETE")

        def _forward(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length) if length else None
            status, headers, body = proxy.forward(method, self.path, list(self.headers.items()), payload)
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the proxy's record is the log

    return Handler


@pytest.fixture(scope="module")
def proxy(steady: Steady) -> Iterator[RecordingProxy]:
    """The recording proxy in front of Steady (module scope, like Steady)."""
    recorder = RecordingProxy(steady.port).start()
    yield recorder
    recorder.stop()


@pytest.fixture
def recorder(proxy: RecordingProxy) -> RecordingProxy:
    """The proxy with an empty record for this test."""
    proxy.take()
    return proxy


Connect = Callable[[], tuple[apsw.Connection, Registration]]


@pytest.fixture
def connect(recorder: RecordingProxy) -> Connect:
    """Opens a fresh connection whose tables talk to Steady through the proxy (Steady serves paths without /v1).

    Fresh for every query, with the response cache off where ``register`` has one, so that each query really
    sends its requests. Organization and project are set so that their headers are part of what Steady judges.
    """

    def make() -> tuple[apsw.Connection, Registration]:
        db = apsw.Connection(":memory:", statementcachesize=0)
        options: dict[str, Any] = (
            {"cache_ttl": 0} if "cache_ttl" in inspect.signature(openai_vtab.register).parameters else {}
        )
        registration = openai_vtab.register(
            db,
            api_key="sk-steady-test-0000000000000000",
            base_url=recorder.url,
            organization="org-steadytest",
            project="proj_steadytest",
            max_retries=0,
            timeout=30,
            **options,
        )
        return db, registration

    return make


# -- the queries each table gets ---------------------------------------------------------------------------------


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: Any) -> str:
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _param_value(spec: Spec, template: str | None, column: Column) -> Any:
    """A value for ``column = ?`` that the spec accepts for its query parameter (enum, example, or a sample)."""
    name = (column.query_param or "").split("[", 1)[0]
    param = spec.query_parameters(template).get(name, {}) if template else {}
    schema = spec.deref(param.get("schema", {}))
    for candidate in (schema.get("enum", [None])[0], schema.get("example"), schema.get("default")):
        if candidate is not None and not isinstance(candidate, (dict, list, bool)):
            return candidate
    return 1 if column.type == "INTEGER" or schema.get("type") == "integer" else "value"


def _queries(table: Table, spec: Spec) -> list[str]:
    """The bounded SQL that exercises every way a table builds a request."""
    name = _ident(table.name)
    columns = ", ".join(_ident(c.name) for c in table.columns)
    template = spec.template(table.path)
    keys = {key: f"{key}-1" for key in table.keys}
    # Every query gives the time range a table requires (costs, usage: start_time >= X).
    required = [f"{_ident(column)} >= {SOME_TIME}" for column, _ in table.required_bounds]

    def where(values: dict[str, str], *extra: str) -> str:
        terms = [f"{_ident(k)} = {_literal(v)}" for k, v in values.items()] + required + list(extra)
        return f" WHERE {' AND '.join(terms)}" if terms else ""

    queries = [f"SELECT {columns} FROM {name}{where(keys)} LIMIT 3"]
    if table.keys:
        arguments = ", ".join(_literal(v) for v in keys.values())
        first, rest = table.keys[0], {k: v for k, v in keys.items() if k != table.keys[0]}
        in_list = f"{_ident(first)} IN ({_literal(first + '-1')}, {_literal(first + '-2')})"
        queries += [
            f"SELECT {columns} FROM {name}({arguments}) LIMIT 3",
            f"SELECT {columns} FROM {name}{where(rest, in_list)} LIMIT 3",
            f"SELECT {columns} FROM {name}{where({**keys, first: AWKWARD_ID})} LIMIT 3",
        ]
    for column in table.columns:
        if column.query_param:
            value = _literal(_param_value(spec, template, column))
            queries.append(f"SELECT {columns} FROM {name}{where(keys, f'{_ident(column.name)} = {value}')} LIMIT 3")
        for bound in column.bounds:
            for op in bound.ops:
                term = f"{_ident(column.name)} {op} {SOME_TIME + 86_400}"
                queries.append(f"SELECT {columns} FROM {name}{where(keys, term)} LIMIT 3")
    for option in table.options:
        for choice in option.choices:
            term = f"{_ident(option.name)} = {_literal(choice)}"
            queries.append(f"SELECT {columns} FROM {name}{where(keys, term)} LIMIT 3")
    return queries


def _run(db: apsw.Connection, sql: str) -> tuple[int, list[str]]:
    """Run ``sql``; the number of rows and any warnings the package raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = db.execute(sql).fetchall()
    return len(rows), [f"{w.category.__name__}: {w.message}" for w in caught]


def _judge(steady: Steady, exchanges: list[Exchange], *routes: str) -> list[str]:
    """Every objection to these requests: Steady's headers, the matched route (one of ``routes``, when given),
    and Steady's log."""
    problems = []
    for exchange in exchanges:
        problems += [f"{exchange.describe()}: {p}" for p in exchange.problems()]
        matched = exchange.headers.get("x-steady-matched-path")
        if routes and matched is not None and _shape(matched) not in {_shape(route) for route in routes}:
            problems.append(f"{exchange.describe()}: Steady matched {matched}, not {' or '.join(routes)}")
    return problems + steady.log_problems(exchanges)


def _routes(table: Table) -> tuple[str, ...]:
    """The paths a table's requests may go to: its own, and the one it follows to its rows."""
    return (table.path, table.follow.path) if table.follow is not None else (table.path,)


# -- every table against Steady ----------------------------------------------------------------------------------


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_table_requests_conform_to_spec(
    table: Table,
    spec: Spec,
    steady: Steady,
    recorder: RecordingProxy,
    connect: Connect,
    record_property: Callable[[str, object], None],
) -> None:
    """Each query shape of the table, and a full first page, sends only requests Steady finds valid."""
    sent: dict[str, list[str]] = {}
    limits: set[str] = set()
    problems: list[str] = []
    for sql in _queries(table, spec):
        count, caught = _run(connect()[0], sql)
        exchanges = recorder.take()
        sent[sql] = [e.describe() for e in exchanges]
        limits.update(e.query.get("limit", "") for e in exchanges)
        if not exchanges:
            problems.append(f"{sql}: sent no request")
        problems += [f"{sql}: {w}" for w in caught]
        problems += [f"{sql}: {p}" for p in _judge(steady, exchanges, *_routes(table))]
        assert count <= 3
    if table.paging.paged:
        # Later pages: the proxy says has_more=true on two answers, so the client follows with after=<last id>
        # (or page=<next_page>) twice. Not more: rows the query filters out (usage buckets from before its
        # start_time) would keep a LIMIT from ever ending the paging.
        sql = _queries(table, spec)[0]
        recorder.force_has_more = 2
        try:
            count, caught = _run(connect()[0], sql)
        finally:
            recorder.force_has_more = 0
        exchanges = recorder.take()
        sent[f"{sql} (has_more forced true)"] = [e.describe() for e in exchanges]
        limits.update(e.query.get("limit", "") for e in exchanges)
        cursor = "after" if table.paging is AFTER_CURSOR else "page"
        if not any(cursor in e.query for e in exchanges[1:]):
            problems.append(f"{sql} with has_more=true: no later page carried {cursor}")
        problems += [f"{sql} (later pages): {w}" for w in caught]
        problems += [f"{sql} (later pages): {p}" for p in _judge(steady, exchanges, *_routes(table))]
    # One full page as the client asks for it: limit = the table's page size (a LIMIT 3 query asks for 3).
    bounds = {bound.param: SOME_TIME for _, bound in table.required_bounds}
    pager = Pager(connect()[1].client, table, {key: f"{key}-1" for key in table.keys}, bounds)
    pager.next_page()
    exchanges = recorder.take()
    sent["(first page at the table's page size)"] = [e.describe() for e in exchanges]
    limits.update(e.query.get("limit", "") for e in exchanges)
    problems += [f"first full page: {p}" for p in _judge(steady, exchanges, *_routes(table))]

    record_property("requests", sent)
    print(f"{table.name}: requests sent to Steady {steady.version}")  # shown with -rP
    for sql, targets in sent.items():
        print(f"  {sql}\n    " + "\n    ".join(targets))
    assert not problems, f"{table.name}: Steady objects to requests:\n" + "\n".join(problems)
    if table.paging.paged and isinstance(table.page_size, int):
        # Both first-page sizes were really sent: the LIMIT 3 hint and the full page.
        assert {"3", str(table.page_size)} <= limits, f"{table.name}: the limits sent were {sorted(limits)}"


# -- every write route against Steady ---------------------------------------------------------------------------

WRITE_TABLES = [table for table in TABLES if table.writes is not None]
# Values a create takes, as a user would write them in SQL (JSON columns as JSON text).
WRITE_SAMPLES: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "training_file": "file-abc123",
    "validation_file": "file-def456",
    "suffix": "custom",
    "seed": 42,
    "method": '{"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}}',
    "metadata": '{"team": "search"}',
    "hyperparameters": '{"n_epochs": 3}',
    "integrations": '[{"type": "wandb", "wandb": {"project": "ft"}}]',
    "project_id": "proj_abc123",
    "fine_tuned_model_checkpoint": "ft:gpt-4o-mini-2024-07-18:org::abc:ckpt-step-10",
    "id": "obj-1",
}


def _write_routes(table: Table) -> list[tuple[str, str]]:
    """(method, path) of every write the table declares."""
    writes = table.writes
    assert writes is not None
    routes = [("POST", writes.create)] if writes.create else []
    routes += [("POST", path) for path in writes.status.values()]
    return routes + ([("DELETE", writes.delete)] if writes.delete else [])


@pytest.mark.parametrize("table", WRITE_TABLES, ids=lambda t: t.name)
def test_write_requests_conform_to_spec(
    table: Table, steady: Steady, recorder: RecordingProxy, connect: Connect
) -> None:
    """Every write a table declares (create with every column it takes, each status, delete), as the table's
    writer sends it, is a request Steady finds valid, on the declared route."""
    _db, registration = connect()
    registration.allow_writes = True
    names = [c.name for c in table.columns] + list(table.hidden)
    writer = TableWriter(table, registration, names)
    writes = table.writes
    assert writes is not None
    row = tuple(WRITE_SAMPLES.get(name) for name in names)
    if writes.create:
        given = set(writes.create_columns) | set(table.keys)
        writer.insert(tuple(WRITE_SAMPLES[n] if n in given else None for n in names))
    for status in writes.status:
        writer.saw(1, row)  # as SQLite does: an UPDATE reads each row before it changes it
        writer.change(1, tuple(status if name == "status" else value for name, value in zip(names, row, strict=True)))
    if writes.delete:
        writer.saw(2, row)
        writer.delete(2)
    exchanges = recorder.take()
    assert sorted((e.method, _shape(e.headers.get("x-steady-matched-path", "?"))) for e in exchanges) == sorted(
        (method, _shape(path)) for method, path in _write_routes(table)
    )
    problems = _judge(steady, exchanges, *(path for _, path in _write_routes(table)))
    assert not problems, f"{table.name}: Steady objects to writes:\n" + "\n".join(problems)


def test_detection_catches_a_bad_write_body(steady: Steady, recorder: RecordingProxy) -> None:
    """A create whose body breaks the spec (a number for model, no training_file) is caught."""
    requests.post(f"{recorder.url}/fine_tuning/jobs", json={"model": 1}, timeout=30)
    problems = _judge(steady, recorder.take(), "/fine_tuning/jobs")
    assert any("x-steady-request-valid: 'false'" in p for p in problems), problems


@pytest.mark.parametrize("table", WRITE_TABLES, ids=lambda t: t.name)
def test_write_routes_are_declared(table: Table, spec: Spec) -> None:
    """Each write a table declares is an operation of the spec, and a create sends only fields its body takes."""
    writes = table.writes
    assert writes is not None
    for method, path in _write_routes(table):
        template = next((t for t in spec.document["paths"] if _shape(t) == _shape(path)), None)
        assert template is not None and method.lower() in spec.document["paths"][template], f"{method} {path}"
        operation = spec.document["paths"][template][method.lower()]
        if method == "POST" and path == writes.create:
            body = spec.deref(operation["requestBody"]["content"]["application/json"]["schema"])
            fields = {writes.as_list.get(name, name) for name in writes.create_columns}
            assert fields <= set(body["properties"]), sorted(fields - set(body["properties"]))


# -- negative controls: the detection works ----------------------------------------------------------------------

# How register() creates each table's module; the negative controls add deliberately wrong tables the same way.
_MODULE_OPTIONS: dict[str, bool] = {"use_bestindex_object": True, "eponymous_only": True, "read_only": True}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("limit=3&bogus=1", "E3015 query.bogus", id="undeclared query parameter"),
        pytest.param("limit=abc", "E3003 query.limit", id="limit not an integer"),
    ],
)
def test_detection_catches_a_bad_request(steady: Steady, recorder: RecordingProxy, query: str, expected: str) -> None:
    """A request Steady objects to, sent directly with requests, is caught by the headers and by the log."""
    requests.get(f"{recorder.url}/fine_tuning/jobs?{query}", timeout=30)
    exchanges = recorder.take()
    assert len(exchanges) == 1
    problems = exchanges[0].problems()
    assert any(expected in p for p in problems), problems
    code, where = expected.split()
    assert any(code in p and where in p for p in steady.log_problems(exchanges)), steady.log_problems(exchanges)
    assert _judge(steady, exchanges, "/fine_tuning/jobs")


def test_detection_catches_a_table_with_an_undeclared_query_param(
    recorder: RecordingProxy, steady: Steady, connect: Connect
) -> None:
    """A table declared with a query_param the spec does not know is caught, though Steady answers 200."""
    db, registration = connect()
    broken = Table(
        name="negative_control_jobs",
        path="/fine_tuning/jobs",
        doc="fine_tuning_jobs with a filter the API does not have",
        columns=(Column("id"), Column("status", query_param="status")),
        example="SELECT id FROM negative_control_jobs WHERE status = 'running'",
    )
    db.create_module(broken.name, TableModule(broken, registration), **_MODULE_OPTIONS)
    _run(db, "SELECT id FROM negative_control_jobs WHERE status = 'running' LIMIT 3")
    exchanges = recorder.take()
    assert exchanges and all(e.status == 200 for e in exchanges)
    problems = _judge(steady, exchanges, broken.path)
    assert any("E3015" in p and "query.status" in p for p in problems), problems


def test_detection_catches_a_table_with_a_wrong_path(
    recorder: RecordingProxy, steady: Steady, connect: Connect
) -> None:
    """A mistyped path fails through SQL (a 404 that is not the API's answer about a key), and Steady's verdict
    names the problem."""
    db, registration = connect()
    broken = Table(
        name="negative_control_path",
        path="/fine_tuning/jobs/{fine_tuning_job_id}/checkpoint",
        doc="job_checkpoints with a typo in the path",
        columns=(Column("id"),),
        example="SELECT id FROM negative_control_path('ftjob-1')",
    )
    db.create_module(broken.name, TableModule(broken, registration), **_MODULE_OPTIONS)
    with pytest.raises(
        openai_vtab.NotFoundError, match=r"negative_control_path: GET .*/checkpoint failed with HTTP 404"
    ):
        db.execute("SELECT id FROM negative_control_path('ftjob-1') LIMIT 3").fetchall()
    problems = _judge(steady, recorder.take(), broken.path)
    assert any("x-steady-request-valid: 'false'" in p for p in problems), problems
    assert any("E2001" in p for p in problems), problems


# -- static facts the spec states about each table ---------------------------------------------------------------


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_table_path_and_parameters_are_declared(table: Table, spec: Spec) -> None:
    """The path is a GET operation; query_params are declared; paging parameters match ``paged``."""
    template = spec.template(table.path)
    assert template is not None, f"{table.name}: the spec has no GET {table.path}"
    params = spec.query_parameters(template)
    for column in table.columns:
        if column.query_param:
            assert column.query_param.split("[", 1)[0] in params, f"{table.name}.{column.name}: {column.query_param}"
    if table.follow is not None:
        assert spec.template(table.follow.path), f"{table.name}: the spec has no GET {table.follow.path} to follow"
        assert spec.declares(spec.answer_schema(template), (table.follow.field.split(".")[0],)), table.follow
    for option in table.options:
        choices = spec.deref(params[option.name].get("schema", {})).get("enum")
        assert choices is not None and set(option.choices) <= set(choices), f"{table.name}.{option.name}: {choices}"
    for column in table.columns:
        for bound in column.bounds:
            declared = params.get(bound.param.split("[", 1)[0])
            assert declared is not None, f"{table.name}.{column.name}: no query parameter {bound.param}"
            assert bound.required == bool(declared.get("required")), f"{table.name}.{column.name}: {bound}"
    if not table.paging.paged:
        assert "limit" not in params, f"{table.name}: GET {template} pages (limit), but the table says it does not"
        return
    cursor = "after" if table.paging is AFTER_CURSOR else "page"
    assert {"limit", cursor} <= set(params), f"{table.name}: GET {template} has no limit/{cursor}: {sorted(params)}"
    limit = spec.deref(params["limit"].get("schema", {}))
    maximum = limit.get("maximum")
    if maximum is None:
        stated = re.search(r"range between 1 and ([\d,]+)", params["limit"].get("description", ""))
        maximum = int(stated.group(1).replace(",", "")) if stated else None
    sizes = [table.page_size] if isinstance(table.page_size, int) else list(table.page_size.values())
    if maximum is None and not isinstance(table.page_size, int):
        # Per bucket width, in words: "- `bucket_width=1d`: default: 7, max: 31".
        stated = dict(
            re.findall(r"bucket_width=(\w+)`: default: \d+, max: (\d+)", params["limit"].get("description", ""))
        )
        assert {width: int(most) for width, most in stated.items()} == table.page_size, stated
    assert maximum is None or all(1 <= size <= maximum for size in sizes), f"{table.name}: page_size {sizes}"


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_table_columns_are_documented(table: Table, spec: Spec) -> None:
    """Each column's source field is in the item schema, or at least in the spec's examples of the resource.

    Steady generates answers from the schema only, so a column known to neither would be NULL there (and is
    most likely a typo). Fields only the examples show are allowed: the schema lags the API at times. A table
    that follows its answer to a CSV file reads columns the spec cannot describe: the download is declared as a
    string, and that is checked instead.
    """
    template = spec.template(table.path)
    assert template is not None, f"{table.name}: the spec has no GET {table.path}"
    if table.follow is not None and table.follow.body is CSV:
        followed = spec.template(table.follow.path)
        assert followed is not None and spec.answer_schema(followed).get("type") == "string", table.follow
        return
    schema, examples = spec.item_schema(template), spec.example_text(template)
    undocumented = [
        f"{c.name} (source {'.'.join(c.path)})"
        for c in table.columns
        if not spec.declares(schema, c.path) and not re.search(rf'\\?"{re.escape(c.path[-1])}\\?"\s*:', examples)
    ]
    assert not undocumented, f"{table.name}: columns the spec does not document for GET {template}: {undocumented}"
