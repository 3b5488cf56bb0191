"""A stateful fake of the OpenAI API on 127.0.0.1, for tests, benchmarks and the shell's demo mode.

Standard library only. It keeps jobs, checkpoints, events, models, files, batches, checkpoint
permissions and an organization (projects with their members, keys, service accounts and rate limits; users,
invites, audit log) that you add in code, pages them by the API's rules (``limit`` with its default and maximum,
``after``, ``has_more``, ``first_id``/``last_id`` where the API sends them), answers errors in the API's
envelope ``{"error": {"message", "type", "param", "code"}}``, checks the bearer key, logs every request,
and can inject faults::

    with FakeOpenAI() as api:
        job = api.add_job()
        api.add_checkpoints(job["id"], 250)
        db = apsw.Connection(":memory:")
        openai_vtab.register(db, api_key=api.api_key, base_url=api.base_url)
        ...
        assert [r.params.get("after") for r in api.requests] == [None, ..., ...]

Use it in your own tests the same way; it never talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import random
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from .errors import FakeError
from .ratelimit import RateLimitMode
from .usage import COUNTS, UsageRoutes, clock
from .writes import WriteRoutes

__all__ = ["FakeOpenAI", "Fault", "RecordedRequest"]

DEFAULT_KEY = "sk-test-fake-0000000000000000"
# The organization's list routes (projects, members, keys, audit logs): GET /organization/..., admin key only.
ORGANIZATION_ROUTES = frozenset(
    {
        "projects",
        "project_api_keys",
        "project_users",
        "project_service_accounts",
        "project_rate_limits",
        "users",
        "invites",
        "audit_logs",
    }
)
# Costs and usage (testing/usage.py): admin key only too.
USAGE_ROUTES = frozenset({"costs", *(f"usage_{kind}" for kind in COUNTS)})
ADMIN_ROUTES = frozenset({"permissions", "permission"}) | ORGANIZATION_ROUTES | USAGE_ROUTES


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it: ``path`` is decoded per segment, ``params`` the query string."""

    method: str
    raw_path: str
    path: str
    route: str
    keys: tuple[str, ...]
    params: dict[str, str]
    headers: dict[str, str]
    query: str = ""  # as sent: a repeated array parameter (group_by[]) is in params only once
    body: bytes = b""  # a write's JSON body

    def json(self) -> Any:
        """The request's JSON body, decoded (None when it has none)."""
        return json.loads(self.body) if self.body else None


@dataclass
class Fault:
    """A programmed misbehaviour, applied to the next ``times`` requests whose path contains ``match``,
    after letting ``skip`` such requests through untouched.

    ``kind`` is one of: ``status`` (answer ``status`` with the error envelope, or ``body`` if given, and
    ``headers``), ``hang``
    (sleep ``seconds`` before answering normally), ``disconnect`` (close the socket without answering), or a
    broken 200 body: ``not-json``, ``truncated``, ``no-data``, ``item-without-id``, ``repeat-cursor``
    (send the same page with ``has_more`` forever), ``empty-has-more`` (no data, ``has_more`` true).
    """

    kind: str
    times: int = 1
    match: str = ""
    skip: int = 0
    status: int = 500
    headers: Mapping[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    message: str = "The server had an error while processing your request."
    body: bytes | None = None


class _State:
    """The fake's data, guarded by one lock (the server is threaded)."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.checkpoints: dict[str, list[dict[str, Any]]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.models: list[dict[str, Any]] = []
        self.files: list[dict[str, Any]] = []
        self.batches: list[dict[str, Any]] = []
        self.permissions: dict[str, list[dict[str, Any]]] = {}
        self.contents: dict[str, bytes] = {}  # file id -> what GET /files/{id}/content answers
        self.usage: dict[str, list[dict[str, Any]]] = {}  # "costs" or a usage kind -> records (testing/usage.py)
        self.organization = _OrganizationState()


class _OrganizationState:
    """The organization behind the admin routes: projects with their members, keys, service accounts and rate
    limits (per project id), the organization's users, invites and audit log."""

    def __init__(self) -> None:
        self.projects: list[dict[str, Any]] = []
        self.users: list[dict[str, Any]] = []
        self.invites: list[dict[str, Any]] = []
        self.audit_logs: list[dict[str, Any]] = []
        self.project_users: dict[str, list[dict[str, Any]]] = {}
        self.project_api_keys: dict[str, list[dict[str, Any]]] = {}
        self.project_service_accounts: dict[str, list[dict[str, Any]]] = {}
        self.project_rate_limits: dict[str, list[dict[str, Any]]] = {}

    def project(self, project_id: str) -> dict[str, Any]:
        """The project with this id, or the API's 404."""
        for project in self.projects:
            if project["id"] == project_id:
                return project
        raise FakeError(404, f"No project found with id '{project_id}'.", param="project_id", code="not_found")

    def user(self, user_id: str) -> dict[str, Any]:
        """The organization user with this id (a KeyError for test code that names an unknown one)."""
        return next(u for u in self.users if u["id"] == user_id)


class FakeOpenAI(UsageRoutes, WriteRoutes, RateLimitMode):
    """The fake API server. Start it with ``with FakeOpenAI() as api:`` or ``start()``/``stop()``.

    ``api_key`` is the only bearer key accepted (None accepts any); when ``admin_api_key`` is set, admin routes
    (checkpoint permissions, ``/organization/...``) accept only that one, and answer ``api_key`` with the API's
    401 for a project key (missing scopes). ``latency`` seconds are added to every
    answer. ``organization``/``project``, when set, are the only values of those headers accepted (403 else).
    ``tls`` (a server-side SSLContext) serves https instead of http. ``rate_limit`` requests per second puts
    a token bucket in front of every route, with the API's ``x-ratelimit-*`` headers and 429s (ratelimit.py).

    To serve the shell's demo organization, fill it with ``openai_vtab.demo.populate(api)`` after
    ``start()``; ``openai-vtab --demo-server`` does that and prints the ``OPENAI_BASE_URL`` and
    ``OPENAI_API_KEY`` to export, for programs that read their settings from the environment.
    """

    def __init__(
        self,
        *,
        api_key: str | None = DEFAULT_KEY,
        admin_api_key: str | None = None,
        latency: float = 0.0,
        organization: str | None = None,
        project: str | None = None,
        seed: int = 0,
        tls: ssl.SSLContext | None = None,
        rate_limit: float | None = None,
    ) -> None:
        self.api_key = api_key
        self.admin_api_key = admin_api_key
        self.latency = latency
        self.organization = organization
        self.project = project
        self.tls = tls
        self.rate_limit = rate_limit
        self.state = _State()
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        # The most requests ever being answered at once: proves concurrency without timing anything.
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        # What costs and usage call now (the end of their time range when a request gives none).
        self.clock: Callable[[], float] = clock
        self._clock = 1_730_000_000
        self._views: dict[tuple[str, str], tuple[int, list[dict[str, Any]], dict[str, int]]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, port: int = 0) -> FakeOpenAI:
        """Listen on ``port`` of 127.0.0.1 (by default a free one) in a background thread."""
        self._server = _Server(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        assert self._server is not None, "start the fake first"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """The base URL to give ``register(base_url=...)``, with the API's ``/v1`` prefix."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1"

    # -- data --------------------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        return prefix + "".join(self._rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(24))

    def _tick(self) -> int:
        self._clock += 60
        return self._clock

    def add_job(self, id: str | None = None, **fields: Any) -> dict[str, Any]:
        """Add a fine-tuning job (a succeeded gpt-4o-mini job unless ``fields`` say otherwise)."""
        created = fields.pop("created_at", None) or self._tick()
        job: dict[str, Any] = {
            "object": "fine_tuning.job",
            "id": id or self._id("ftjob-"),
            "model": "gpt-4o-mini-2024-07-18",
            "created_at": created,
            "finished_at": created + 1800,
            "fine_tuned_model": None,
            "organization_id": self.organization or "org-fake",
            "result_files": [],
            "status": "succeeded",
            "validation_file": None,
            "training_file": self._id("file-"),
            "hyperparameters": {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8},
            "trained_tokens": 120_000,
            "error": None,
            "user_provided_suffix": None,
            "seed": self._rng.randrange(2**31),
            "estimated_finish": None,
            "integrations": [],
            "metadata": None,
            "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}},
        }
        job.update(fields)
        if job["status"] == "succeeded" and job["fine_tuned_model"] is None:
            job["fine_tuned_model"] = f"ft:{job['model']}:fake-org::{job['id'][-8:]}"
        with self._lock:
            self.state.jobs[job["id"]] = job
            self.state.checkpoints.setdefault(job["id"], [])
            self.state.events.setdefault(job["id"], [])
        return job

    def add_checkpoint(self, job_id: str, step_number: int, metrics: Mapping[str, float], **fields: Any) -> dict:
        """Add one checkpoint to a job (the job must exist)."""
        job = self.state.jobs[job_id]
        checkpoint = {
            "object": "fine_tuning.job.checkpoint",
            "id": fields.pop("id", None) or self._id("ftckpt_"),
            "created_at": fields.pop("created_at", None) or self._tick(),
            "fine_tuned_model_checkpoint": f"ft:{job['model']}:fake-org::{job_id[-8:]}:ckpt-step-{step_number}",
            "fine_tuning_job_id": job_id,
            "metrics": {"step": float(step_number), **metrics},
            "step_number": step_number,
        }
        checkpoint.update(fields)
        with self._lock:
            self.state.checkpoints[job_id].append(checkpoint)
        return checkpoint

    def add_checkpoints(self, job_id: str, count: int, *, start_loss: float = 2.0) -> list[dict[str, Any]]:
        """Add ``count`` checkpoints with a falling loss curve; validation metrics only on some steps."""
        added = []
        for step in range(1, count + 1):
            progress = step / max(count, 1)
            loss = start_loss * (0.25 + 0.75 * (1 - progress) ** 2) + self._rng.uniform(-0.02, 0.02)
            metrics: dict[str, float] = {
                "train_loss": round(loss, 4),
                "train_mean_token_accuracy": round(min(0.99, 0.55 + 0.4 * progress), 4),
            }
            if step % 2 == 0:
                metrics["valid_loss"] = round(loss * 1.08, 4)
                metrics["valid_mean_token_accuracy"] = round(min(0.99, 0.5 + 0.4 * progress), 4)
            if step % 5 == 0 or step == count:
                metrics["full_valid_loss"] = round(loss * 1.1, 4)
                metrics["full_valid_mean_token_accuracy"] = round(min(0.99, 0.5 + 0.38 * progress), 4)
            added.append(self.add_checkpoint(job_id, step, metrics))
        return added

    def add_event(self, job_id: str, message: str, *, level: str = "info", **fields: Any) -> dict[str, Any]:
        """Add one event to a job's event log."""
        event = {
            "object": "fine_tuning.job.event",
            "id": fields.pop("id", None) or self._id("ftevent-"),
            "created_at": fields.pop("created_at", None) or self._tick(),
            "level": level,
            "message": message,
            "type": "message",
            "data": {},
        }
        event.update(fields)
        with self._lock:
            self.state.events.setdefault(job_id, []).append(event)
        return event

    def add_model(
        self, id: str, *, owned_by: str = "openai", created: int | None = None, shutdown_date: str | None = None
    ) -> dict[str, Any]:
        """Add a model to GET /models; ``shutdown_date`` is an ISO date, or None when none is announced."""
        model = {
            "id": id,
            "object": "model",
            "created": created or self._tick(),
            "owned_by": owned_by,
            "shutdown_date": shutdown_date,
        }
        with self._lock:
            self.state.models.append(model)
        return model

    def add_file(self, filename: str, *, purpose: str = "fine-tune", **fields: Any) -> dict[str, Any]:
        """Add an uploaded file to GET /files."""
        file = {
            "id": fields.pop("id", None) or self._id("file-"),
            "object": "file",
            "bytes": 1024,
            "created_at": self._tick(),
            "expires_at": None,
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "status_details": None,
        }
        file.update(fields)
        with self._lock:
            self.state.files.append(file)
        return file

    def add_result_file(
        self,
        job_id: str,
        rows: Iterable[Mapping[str, Any]] | str,
        *,
        id: str | None = None,
        encoding: str = "plain",
        **fields: Any,
    ) -> dict[str, Any]:
        """Give a job its result file (``step_metrics.csv``), listed in GET /files and served by
        GET /files/{id}/content; the job's ``result_files`` becomes ``[id]``.

        ``rows`` are the CSV lines as mappings (the header is the union of their keys, in first-seen order; a
        missing or None value is a blank cell), or the file's whole text. ``encoding`` is how the API serves it:
        ``plain`` text, ``base64`` of it, or ``json`` (a JSON string, as the spec declares the download).
        ``fields`` go to the file object (``created_at``, ...).
        """
        if isinstance(rows, str):
            text = rows
        else:
            lines = list(rows)
            header = list(dict.fromkeys(name for row in lines for name in row))
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(header)
            for row in lines:
                writer.writerow(["" if row.get(name) is None else row[name] for name in header])
            text = out.getvalue()
        content = {
            "plain": lambda: text.encode(),
            "base64": lambda: base64.b64encode(text.encode()),
            "json": lambda: json.dumps(text).encode(),
        }[encoding]()
        file = self.add_file("step_metrics.csv", purpose="fine-tune-results", id=id or self._id("file-"), **fields)
        file["bytes"] = len(content)
        with self._lock:
            self.state.contents[file["id"]] = content
            self.state.jobs[job_id]["result_files"] = [file["id"]]
        return file

    def add_batch(self, **fields: Any) -> dict[str, Any]:
        """Add a batch to GET /batches."""
        created = self._tick()
        batch = {
            "id": fields.pop("id", None) or self._id("batch_"),
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": None,
            "input_file_id": self._id("file-"),
            "completion_window": "24h",
            "status": "completed",
            "output_file_id": self._id("file-"),
            "error_file_id": None,
            "created_at": created,
            "in_progress_at": created + 5,
            "expires_at": created + 86_400,
            "finalizing_at": created + 600,
            "completed_at": created + 660,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 100, "completed": 100, "failed": 0},
            "metadata": None,
        }
        batch.update(fields)
        with self._lock:
            self.state.batches.append(batch)
        return batch

    def add_permission(self, checkpoint: str, project_id: str) -> dict[str, Any]:
        """Grant a project access to a fine-tuned model checkpoint."""
        permission = {
            "id": self._id("cp_"),
            "object": "checkpoint.permission",
            "created_at": self._tick(),
            "project_id": project_id,
        }
        with self._lock:
            self.state.permissions.setdefault(checkpoint, []).append(permission)
        return permission

    # -- the organization (admin routes) -------------------------------------------------------------

    def add_project(self, name: str, *, id: str | None = None, **fields: Any) -> dict[str, Any]:
        """Add a project to GET /organization/projects (active unless ``fields`` archive it)."""
        project = {
            "id": id or self._id("proj_"),
            "object": "organization.project",
            "name": name,
            "created_at": fields.pop("created_at", None) or self._tick(),
            "archived_at": None,
            "status": "active",
            "external_key_id": None,
        }
        project.update(fields)
        org = self.state.organization
        with self._lock:
            org.projects.append(project)
            for table in (
                org.project_users,
                org.project_api_keys,
                org.project_service_accounts,
                org.project_rate_limits,
            ):
                table[project["id"]] = []
        return project

    def add_user(self, email: str, *, name: str | None = None, role: str = "reader", **fields: Any) -> dict[str, Any]:
        """Add a member to GET /organization/users."""
        user_id = fields.pop("id", None) or self._id("user-")
        user = {
            "object": "organization.user",
            "id": user_id,
            "name": name,
            "email": email,
            "role": role,
            "added_at": fields.pop("added_at", None) or self._tick(),
            "is_default": False,
            "is_service_account": False,
            "is_scim_managed": False,
            "api_key_last_used_at": None,
            "user": {"object": "user", "id": user_id, "email": email, "name": name, "enabled": True, "banned": False},
        }
        user.update(fields)
        with self._lock:
            self.state.organization.users.append(user)
        return user

    def add_project_user(self, project_id: str, user_id: str, *, role: str = "member", **fields: Any) -> dict:
        """Make an organization user (see ``add_user``) a member of a project."""
        org = self.state.organization
        user = org.user(user_id)
        member = {
            "object": "organization.project.user",
            "id": user_id,
            "name": user["name"],
            "email": user["email"],
            "role": role,
            "added_at": fields.pop("added_at", None) or self._tick(),
        }
        member.update(fields)
        with self._lock:
            org.project_users[project_id].append(member)
        return member

    def add_project_service_account(self, project_id: str, name: str, *, role: str = "member", **fields: Any) -> dict:
        """Add a service account to a project."""
        account = {
            "object": "organization.project.service_account",
            "id": fields.pop("id", None) or self._id("svc_acct_"),
            "name": name,
            "role": role,
            "created_at": fields.pop("created_at", None) or self._tick(),
        }
        account.update(fields)
        with self._lock:
            self.state.organization.project_service_accounts[project_id].append(account)
        return account

    def add_project_api_key(
        self,
        project_id: str,
        name: str,
        *,
        user_id: str | None = None,
        service_account_id: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Add an API key to a project, owned by an organization user or by one of the project's service
        accounts (give exactly one of ``user_id``, ``service_account_id``)."""
        if (user_id is None) == (service_account_id is None):
            raise ValueError("give exactly one owner: user_id or service_account_id")
        org = self.state.organization
        created = fields.pop("created_at", None) or self._tick()
        if user_id is not None:
            user = org.user(user_id)
            member = next((m for m in org.project_users[project_id] if m["id"] == user_id), None)
            owner: dict[str, Any] = {
                "type": "user",
                "user": {
                    "id": user_id,
                    "email": user["email"],
                    "name": user["name"] or "",
                    "created_at": user["added_at"],
                    "role": member["role"] if member else "member",
                },
            }
        else:
            account = next(a for a in org.project_service_accounts[project_id] if a["id"] == service_account_id)
            owner = {
                "type": "service_account",
                "service_account": {k: account[k] for k in ("id", "name", "created_at", "role")},
            }
        secret = "".join(self._rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(6))
        key = {
            "object": "organization.project.api_key",
            "redacted_value": f"sk-proj-{secret[:3]}...{secret[3:]}",
            "name": name,
            "created_at": created,
            "last_used_at": None,
            "id": fields.pop("id", None) or self._id("key_"),
            "owner_project_access": "active",
            "owner": owner,
        }
        key.update(fields)
        with self._lock:
            org.project_api_keys[project_id].append(key)
        return key

    def add_project_rate_limit(
        self,
        project_id: str,
        model: str,
        *,
        requests_per_minute: int = 5_000,
        tokens_per_minute: int = 800_000,
        **fields: Any,
    ) -> dict[str, Any]:
        """Add a project's rate limit for one model (``fields`` add the optional limits, e.g.
        ``batch_1_day_max_input_tokens``)."""
        limit = {
            "object": "project.rate_limit",
            "id": fields.pop("id", None) or f"rl-{model}",
            "model": model,
            "max_requests_per_1_minute": requests_per_minute,
            "max_tokens_per_1_minute": tokens_per_minute,
        }
        limit.update(fields)
        with self._lock:
            self.state.organization.project_rate_limits[project_id].append(limit)
        return limit

    def add_invite(
        self,
        email: str,
        *,
        role: str = "reader",
        status: str = "pending",
        projects: Iterable[Mapping] = (),
        **fields: Any,
    ) -> dict[str, Any]:
        """Add an invite to GET /organization/invites; ``projects`` are ``{"id", "role"}`` grants."""
        created = fields.pop("created_at", None) or self._tick()
        invite = {
            "object": "organization.invite",
            "id": fields.pop("id", None) or self._id("invite-"),
            "email": email,
            "role": role,
            "status": status,
            "created_at": created,
            "expires_at": created + 7 * 86_400,
            "accepted_at": created + 3_600 if status == "accepted" else None,
            "projects": [dict(p) for p in projects],
        }
        invite.update(fields)
        with self._lock:
            self.state.organization.invites.append(invite)
        return invite

    def add_audit_log(
        self,
        type: str,
        actor: Mapping[str, Any],
        *,
        project_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Add an event to GET /organization/audit_logs. ``actor`` is the API's actor object (see
        ``session_actor``/``api_key_actor``); ``details`` go under the key named by ``type``, as the API sends
        them; ``project_id`` scopes the event to a project (its name is filled in)."""
        event: dict[str, Any] = {
            "id": fields.pop("id", None) or self._id("audit_log-"),
            "type": type,
            "effective_at": fields.pop("effective_at", None) or self._tick(),
            "actor": dict(actor),
        }
        if project_id is not None:
            event["project"] = {"id": project_id, "name": self.state.organization.project(project_id)["name"]}
        if details is not None:
            event[type] = dict(details)
        event.update(fields)
        with self._lock:
            self.state.organization.audit_logs.append(event)
        return event

    @staticmethod
    def session_actor(user: Mapping[str, Any], ip_address: str = "203.0.113.7") -> dict[str, Any]:
        """The audit log actor of someone signed in to the dashboard: ``user`` as ``add_user`` returned it."""
        return {
            "type": "session",
            "session": {"user": {"id": user["id"], "email": user["email"]}, "ip_address": ip_address},
        }

    @staticmethod
    def api_key_actor(key: Mapping[str, Any]) -> dict[str, Any]:
        """The audit log actor of a request made with a project API key, as ``add_project_api_key`` returned it."""
        owner = key["owner"]
        if owner["type"] == "user":
            who = {"user": {"id": owner["user"]["id"], "email": owner["user"]["email"]}}
        else:
            who = {"service_account": {"id": owner["service_account"]["id"]}}
        return {"type": "api_key", "api_key": {"id": key["id"], "type": owner["type"], **who}}

    # -- faults and log ----------------------------------------------------------------------------

    def inject(self, kind: str, *, times: int = 1, match: str = "", **options: Any) -> Fault:
        """Program a fault (see ``Fault``) for the next ``times`` matching requests."""
        fault = Fault(kind, times=times, match=match, **options)
        with self._lock:
            self.faults.append(fault)
        return fault

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        match: str = "",
        skip: int = 0,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Answer the next ``times`` matching requests with HTTP ``status`` (and optional headers)."""
        return self.inject("status", times=times, match=match, skip=skip, status=status, headers=dict(headers or {}))

    def clear(self) -> None:
        """Forget logged requests and pending faults (the data stays)."""
        with self._lock:
            self.requests.clear()
            self.faults.clear()
            self.max_in_flight = 0
            self.rate_limited = 0

    def requests_to(self, route: str) -> list[RecordedRequest]:
        """Logged requests whose route (e.g. ``checkpoints``) matches."""
        with self._lock:
            return [r for r in self.requests if r.route == route]

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.match in path and fault.times > 0:
                    if fault.skip > 0:
                        fault.skip -= 1
                        return None
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # -- routing -----------------------------------------------------------------------------------

    def _route(self, segments: list[str]) -> tuple[str, tuple[str, ...]]:
        match segments:
            case ["v1", "fine_tuning", "jobs"]:
                return "jobs", ()
            case ["v1", "fine_tuning", "jobs", job]:
                return "job", (job,)
            case ["v1", "files", file, "content"]:
                return "content", (file,)
            case ["v1", "fine_tuning", "jobs", job, "checkpoints"]:
                return "checkpoints", (job,)
            case ["v1", "fine_tuning", "jobs", job, "events"]:
                return "events", (job,)
            case ["v1", "fine_tuning", "checkpoints", checkpoint, "permissions"]:
                return "permissions", (checkpoint,)
            case ["v1", "models"]:
                return "models", ()
            case ["v1", "files"]:
                return "files", ()
            case ["v1", "batches"]:
                return "batches", ()
            case ["v1", "batches", batch]:
                return "batch", (batch,)
        return self._route_usage(segments) or self._route_writes(segments) or self._route_organization(segments)

    def _answer(self, route: str, keys: tuple[str, ...], params: dict[str, str], query: str) -> dict[str, Any] | bytes:
        state = self.state
        with self._lock:
            if route == "job":
                _allow(params, set())
                return self._job(keys[0])
            if route == "batch":  # retrieve one batch (a cancel whose answer was lost is checked this way)
                _allow(params, set())
                batch = next((b for b in state.batches if b["id"] == keys[0]), None)
                if batch is None:
                    raise FakeError(404, f"No batch found with id '{keys[0]}'.", param="batch_id")
                return dict(batch)
            if route == "content":
                _allow(params, set())
                if keys[0] not in state.contents:
                    raise FakeError(404, f"No such File object: {keys[0]}", param="id")
                return state.contents[keys[0]]
            if route == "jobs":
                _allow(params, {"after", "limit", "metadata"}, prefix="metadata[")
                wanted = {k[9:-1]: v for k, v in params.items() if k.startswith("metadata[")}
                jobs = [
                    j for j in state.jobs.values() if all((j["metadata"] or {}).get(k) == v for k, v in wanted.items())
                ]
                if params.get("metadata") == "null":  # the spec's way to ask for jobs without metadata
                    jobs = [j for j in jobs if not j["metadata"]]
                return _page(_newest_first(jobs), params, default=20, maximum=100)
            if route == "checkpoints":
                _allow(params, {"after", "limit"})
                items, index = self._newest_view(("checkpoints", keys[0]), self._of_job(state.checkpoints, keys[0]))
                return _page(items, params, default=10, maximum=100, ids=True, index=index)
            if route == "events":
                _allow(params, {"after", "limit"})
                return _page(_newest_first(self._of_job(state.events, keys[0])), params, default=20, maximum=100)
            if route == "permissions":
                _allow(params, {"after", "limit", "order", "project_id"})
                _one_of(params, "order", ("ascending", "descending"))
                items = [
                    p for p in state.permissions.get(keys[0], []) if params.get("project_id") in (None, p["project_id"])
                ]
                items = sorted(items, key=lambda p: p["created_at"], reverse=params.get("order") != "ascending")
                return _page(items, params, default=10, maximum=100, ids=True)
            if route == "models":
                _allow(params, set())
                return {"object": "list", "data": list(state.models)}
            if route == "files":
                _allow(params, {"after", "limit", "order", "purpose"})
                _one_of(params, "order", ("asc", "desc"))
                items = [f for f in state.files if params.get("purpose") in (None, f["purpose"])]
                items = sorted(items, key=lambda f: f["created_at"], reverse=params.get("order", "desc") == "desc")
                return _page(items, params, default=10_000, maximum=10_000, ids=True)
            if route == "batches":
                _allow(params, {"after", "limit"})
                return _page(_newest_first(state.batches), params, default=20, maximum=100, ids=True)
            if route in ORGANIZATION_ROUTES:
                return self._answer_organization(route, keys, params)
            if route in USAGE_ROUTES:
                return self._answer_usage(route, query)
        raise FakeError(404, "Invalid URL (GET {path})", code="unknown_url")

    def _newest_view(
        self, name: tuple[str, str], items: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], dict[str, int]]:
        # Lists only grow, so their length tells whether the sorted copy and its id index are still good;
        # without this, paging a 100,000-item list costs a sort and a scan per page.
        cached = self._views.get(name)
        if cached is None or cached[0] != len(items):
            ordered = _newest_first(items)
            cached = self._views[name] = (len(items), ordered, {item["id"]: i for i, item in enumerate(ordered)})
        return cached[1], cached[2]

    def _job(self, job_id: str) -> dict[str, Any]:
        job = self.state.jobs.get(job_id)
        if job is None:
            raise FakeError(
                404, f"Could not find fine-tuning job {job_id}.", param="fine_tuning_job_id", code="fine_tune_not_found"
            )
        return job

    def _of_job(self, table: dict[str, list[dict[str, Any]]], job_id: str) -> list[dict[str, Any]]:
        self._job(job_id)
        return table[job_id] if table is self.state.checkpoints else table.setdefault(job_id, [])

    # -- the organization's routes (admin) -------------------------------------------------------------------

    def _route_organization(self, segments: list[str]) -> tuple[str, tuple[str, ...]]:
        match segments:
            case ["v1", "organization", "projects"]:
                return "projects", ()
            case [
                "v1",
                "organization",
                "projects",
                project,
                ("api_keys" | "users" | "service_accounts" | "rate_limits") as kind,
            ]:
                return f"project_{kind}", (project,)
            case ["v1", "organization", ("users" | "invites" | "audit_logs") as kind]:
                return kind, ()
        return "unknown", ()

    def _answer_organization(self, route: str, keys: tuple[str, ...], params: dict[str, str]) -> dict[str, Any]:
        # Called with the lock held. Lists come oldest first, as the dashboard shows them; audit logs newest first.
        org = self.state.organization
        paging = {"after", "before", "limit"}
        if route == "projects":
            _allow(params, paging | {"include_archived"})
            _one_of(params, "include_archived", ("true", "false"))
            archived = params.get("include_archived") == "true"
            return _page_organization([p for p in org.projects if archived or p["status"] != "archived"], params)
        if route == "users":
            _allow(params, paging | {"emails", "emails[]"})
            wanted = params.get("emails[]", params.get("emails"))
            return _page_organization([u for u in org.users if wanted in (None, u["email"])], params)
        if route == "invites":
            _allow(params, paging - {"before"})
            return _page_organization(org.invites, params)
        if route == "audit_logs":
            return _page_organization(_audit_logs(org.audit_logs, params), params)
        org.project(keys[0])
        if route == "project_api_keys":
            _allow(params, paging - {"before"} | {"owner_project_access"})
            _one_of(params, "owner_project_access", ("active", "inactive", "any"))
            # Without the parameter the API applies its membership rules: keys of owners who lost access are left out.
            access = params.get("owner_project_access", "active")
            items = [k for k in org.project_api_keys[keys[0]] if access in ("any", k["owner_project_access"])]
            return _page_organization(items, params)
        if route == "project_rate_limits":
            _allow(params, paging)
            return _page_organization(org.project_rate_limits[keys[0]], params, default=100)
        _allow(params, paging - {"before"})
        table = org.project_users if route == "project_users" else org.project_service_accounts
        return _page_organization(table[keys[0]], params)

    def _authorize(self, route: str, headers: Mapping[str, str]) -> None:
        auth = headers.get("authorization", "")
        wanted = self.admin_api_key if route in ADMIN_ROUTES and self.admin_api_key else self.api_key
        if wanted is not None and auth != f"Bearer {wanted}":
            given = auth.removeprefix("Bearer ")
            if wanted == self.admin_api_key and given == self.api_key:
                # The API's answer to a project key on an admin endpoint: a 401 naming the missing scope.
                raise FakeError(
                    401,
                    "You have insufficient permissions for this operation. Missing scopes: api.management.read. "
                    "Check that you have the correct role in your organization (Reader, Writer, Owner) and project "
                    "(Member, Owner), and if you're using a restricted API key, that it has the necessary scopes.",
                )
            # The real API echoes part of a rejected key; this fake echoes all of it, so that tests prove the
            # client never passes server text containing the key through to the user.
            raise FakeError(401, f"Incorrect API key provided: {given}.", code="invalid_api_key")
        for header, allowed in (("openai-organization", self.organization), ("openai-project", self.project)):
            if allowed is not None and headers.get(header, allowed) != allowed:
                raise FakeError(
                    403,
                    f"You are not a member of {header.split('-')[1]} {headers[header]}.",
                    type="invalid_request_error",
                )

    def handle(
        self, method: str, raw: str, headers: Mapping[str, str], payload: bytes = b""
    ) -> tuple[int, dict[str, str], bytes | None]:
        """Answer one request (``payload``: its body): (status, headers, body); a body of None means drop the
        connection."""
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            return self._within_rate_limit(method, raw, headers, payload)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _record(self, method: str, raw: str, headers: Mapping[str, str], payload: bytes) -> RecordedRequest:
        """Log one request as it arrived."""
        raw_path, _, query = raw.partition("?")
        segments = [unquote(s) for s in raw_path.strip("/").split("/")]
        route, keys = self._route(segments)
        params = dict(parse_qsl(query, keep_blank_values=True))
        record = RecordedRequest(
            method, raw_path, "/" + "/".join(segments), route, keys, params, dict(headers), query, payload
        )
        with self._lock:
            self.requests.append(record)
        return record

    def _handle(
        self, method: str, raw: str, headers: Mapping[str, str], payload: bytes
    ) -> tuple[int, dict[str, str], bytes | None]:
        record = self._record(method, raw, headers, payload)
        raw_path, route, keys, params, query = record.raw_path, record.route, record.keys, record.params, record.query
        if self.latency:
            time.sleep(self.latency)
        fault = self._take_fault(raw_path)
        if fault is not None and fault.kind == "hang":
            time.sleep(fault.seconds)
            fault = None
        if fault is not None and fault.kind == "disconnect":
            return 0, {}, None
        try:
            if fault is not None and fault.kind == "status":
                if fault.body is not None:  # not the API's envelope: a proxy's or a web server's page
                    return fault.status, dict(fault.headers), fault.body
                raise FakeError(fault.status, fault.message, type="server_error" if fault.status >= 500 else "requests")
            self._authorize(route, headers)
            if fault is not None and fault.kind == "repeat-cursor":
                params = {k: v for k, v in params.items() if k != "after"}
            if method == "GET":
                body = self._answer(route, keys, params, query)
            else:
                body = self._answer_write(method, route, keys, params, payload)
        except FakeError as error:
            if route == "unknown" and error.status == 404:
                error.body["error"]["message"] = f"Invalid URL ({method} {raw_path})"
            extra = dict(fault.headers) if fault is not None and fault.kind == "status" else {}
            return error.status, extra, json.dumps(error.body).encode()
        if isinstance(body, bytes):  # a file's content, as the API sends it: not JSON, whatever it holds
            raw = {"Content-Type": "application/octet-stream"}
            if fault is not None and fault.kind == "truncated":
                return 200, {**raw, "Content-Length": str(len(body)), "Connection": "close"}, body[: len(body) // 2]
            return 200, raw, body
        if fault is None:
            return 200, {}, json.dumps(body).encode()
        broken = _broken(fault.kind, body)
        if fault.kind == "truncated":
            # Promise the whole body, send half, and hang up: the connection breaks mid-answer.
            return 200, {"Content-Length": str(len(broken) * 2), "Connection": "close"}, broken
        return 200, {}, broken


def _allow(params: Mapping[str, str], names: set[str], prefix: str | None = None) -> None:
    for name in params:
        if name not in names and not (prefix and name.startswith(prefix)):
            raise FakeError(
                400, f"Unrecognized request argument supplied: {name}", param=name, code="unknown_parameter"
            )


def _one_of(params: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> None:
    if name in params and params[name] not in allowed:
        raise FakeError(
            400, f"Invalid '{name}': expected one of {', '.join(allowed)}.", param=name, code="invalid_value"
        )


def _newest_first(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    # Stable on equal timestamps (reverse insertion order), so paging is deterministic.
    return list(reversed(sorted(items, key=lambda item: item["created_at"])))


def _page(
    items: list[dict[str, Any]],
    params: Mapping[str, str],
    *,
    default: int,
    maximum: int,
    ids: bool = False,
    index: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    raw_limit = params.get("limit", str(default))
    try:
        limit = int(raw_limit)
    except ValueError:
        raise FakeError(
            400, f"Invalid 'limit': expected an integer, got {raw_limit!r}.", param="limit", code="invalid_value"
        ) from None
    if not 1 <= limit <= maximum:
        raise FakeError(
            400, f"Invalid 'limit': must be between 1 and {maximum}, got {limit}.", param="limit", code="invalid_value"
        )
    start = 0
    if "after" in params:
        if index is not None:
            positions = [index[params["after"]]] if params["after"] in index else []
        else:
            positions = [i for i, item in enumerate(items) if item["id"] == params["after"]]
        if not positions:
            raise FakeError(
                400, f"Invalid 'after': no object with id {params['after']!r}.", param="after", code="invalid_value"
            )
        start = positions[0] + 1
    data = items[start : start + limit]
    page: dict[str, Any] = {"object": "list", "data": data, "has_more": start + limit < len(items)}
    if ids:
        page["first_id"] = data[0]["id"] if data else None
        page["last_id"] = data[-1]["id"] if data else None
    return page


_AUDIT_FILTERS: dict[str, Callable[[dict[str, Any], str], bool]] = {
    "effective_at[gt]": lambda e, v: e["effective_at"] > int(v),
    "effective_at[gte]": lambda e, v: e["effective_at"] >= int(v),
    "effective_at[lt]": lambda e, v: e["effective_at"] < int(v),
    "effective_at[lte]": lambda e, v: e["effective_at"] <= int(v),
    "project_ids[]": lambda e, v: (e.get("project") or {}).get("id") == v,
    "event_types[]": lambda e, v: e["type"] == v,
    "actor_ids[]": lambda e, v: v in _actor_ids(e.get("actor") or {}),
    "actor_emails[]": lambda e, v: v in _actor_ids(e.get("actor") or {}),
    "resource_ids[]": lambda e, v: (e.get(e["type"]) or {}).get("id") == v,
    "tenant_only": lambda e, v: v != "true",  # the fake keeps no tenant-scoped events
}


def _actor_ids(actor: Mapping[str, Any]) -> set[str]:
    """The ids and emails an audit log actor can be found by."""
    inner = actor.get("session") or actor.get("api_key") or {}
    found = {inner.get("id")}
    for who in ("user", "service_account"):
        found |= {(inner.get(who) or {}).get("id"), (inner.get(who) or {}).get("email")}
    return {value for value in found if value}


def _audit_logs(events: list[dict[str, Any]], params: Mapping[str, str]) -> list[dict[str, Any]]:
    """The audit log events ``params`` select, newest first. A repeated array parameter keeps its last value."""
    _allow(params, {"after", "before", "limit", *_AUDIT_FILTERS})
    _one_of(params, "tenant_only", ("true", "false"))
    for name, value in params.items():
        if name.startswith("effective_at[") and not value.lstrip("-").isdigit():
            raise FakeError(
                400, f"Invalid '{name}': expected an integer, got {value!r}.", param=name, code="invalid_value"
            )
    selected = [e for e in events if all(_AUDIT_FILTERS[n](e, v) for n, v in params.items() if n in _AUDIT_FILTERS)]
    return list(reversed(sorted(selected, key=lambda e: e["effective_at"])))


def _page_organization(
    items: list[dict[str, Any]], params: Mapping[str, str], *, default: int = 20, maximum: int = 100
) -> dict[str, Any]:
    """A page of an organization list, which also pages backwards: ``before`` gives the items just before an id."""
    if "before" not in params:
        return _page(items, params, default=default, maximum=maximum, ids=True)
    if "after" in params:
        raise FakeError(400, "Give either 'after' or 'before', not both.", param="before", code="invalid_value")
    position = next((i for i, item in enumerate(items) if item["id"] == params["before"]), None)
    if position is None:
        raise FakeError(
            400, f"Invalid 'before': no object with id {params['before']!r}.", param="before", code="invalid_value"
        )
    rest = {name: value for name, value in params.items() if name != "before"}
    page = _page(items[:position][::-1], rest, default=default, maximum=maximum, ids=True)
    page["data"].reverse()
    page["first_id"], page["last_id"] = page["last_id"], page["first_id"]
    return page


def _broken(kind: str, body: dict[str, Any]) -> bytes:
    text = json.dumps(body).encode()
    if kind == "not-json":
        return b"<html><body>Service temporarily unavailable</body></html>"
    if kind == "truncated":
        return text[: len(text) // 2]
    if kind == "no-data":
        return json.dumps({"object": "list", "has_more": False}).encode()
    if kind == "item-without-id":
        return json.dumps({**body, "data": [{"object": "x"}, *body.get("data", [])]}).encode()
    if kind == "repeat-cursor":
        return json.dumps({**body, "has_more": True}).encode()
    if kind == "empty-has-more":
        return json.dumps({**body, "data": [], "has_more": True}).encode()
    raise ValueError(f"unknown fault kind {kind!r}")


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout, interrupt) closes its socket mid-answer: expected here, not news.
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError)):
            super().handle_error(request, client_address)


def _handler(api: FakeOpenAI) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as separate writes; without TCP_NODELAY, Nagle's algorithm and delayed
        # ACKs add ~40 ms to every keep-alive response.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            payload = self.rfile.read(int(headers.get("content-length") or 0))
            status, extra, body = api.handle(method, self.path, headers, payload)
            if body is None:
                self.close_connection = True
                self.connection.close()
                return
            self.send_response(status)
            self.send_header("Content-Type", extra.pop("Content-Type", "application/json"))
            self.send_header("Content-Length", extra.pop("Content-Length", str(len(body))))
            if extra.get("Connection") == "close":
                self.close_connection = True
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # tests read api.requests instead

    return Handler
