"""The tables: one declarative ``Table`` value per OpenAI list endpoint.

This module knows neither apsw nor HTTP. ``vtab.py`` turns each declaration into a virtual table and
``client.py`` fetches its pages; adding an endpoint means adding a value here (plus a route in the fake API
and a README section), never a change to the engine.

A ``{name}`` in a table's path makes ``name`` a required, hidden key column: its value comes from the query
(``WHERE name = ?``, ``IN (...)``, a join, or the table-valued form ``table('value')``) and goes into the URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .paging import AFTER_CURSOR, CSV, JSON, NO_PAGING, Decoder, Follow, Paging

__all__ = [
    "TABLES",
    "Column",
    "Table",
    "audit_logs",
    "batches",
    "checkpoint_permissions",
    "files",
    "fine_tuning_jobs",
    "invites",
    "job_checkpoints",
    "job_events",
    "job_metrics",
    "models",
    "project_api_keys",
    "project_rate_limits",
    "project_service_accounts",
    "project_users",
    "projects",
    "users",
]

COLUMN_TYPES = ("TEXT", "INTEGER", "REAL", "JSON")


@dataclass(frozen=True)
class Column:
    """One column of a table.

    ``source`` is the dotted path of the value in the API object (default: the column name). ``JSON``
    columns hold the value as JSON text. ``query_param`` names the API query parameter an ``=`` constraint
    on this column is pushed down to; SQLite still checks the rows, so the pushdown only saves traffic.
    """

    name: str
    type: str = "TEXT"
    source: str | None = None
    doc: str = ""
    query_param: str | None = None

    def __post_init__(self) -> None:
        if self.type not in COLUMN_TYPES:
            raise ValueError(f"column {self.name}: type must be one of {COLUMN_TYPES}, not {self.type!r}")

    @property
    def path(self) -> tuple[str, ...]:
        """The keys leading to this column's value inside an API object."""
        return tuple((self.source or self.name).split("."))

    @property
    def sql_type(self) -> str:
        """The type declared to SQLite (JSON is stored as TEXT)."""
        return "TEXT" if self.type == "JSON" else self.type


@dataclass(frozen=True)
class Table:
    """An OpenAI endpoint as a read-only SQL table.

    ``path`` is relative to the base URL; each ``{placeholder}`` is a required hidden key column.
    ``paging`` is how its answers come in pages (``paging.py``: ``AFTER_CURSOR`` takes ``limit``/``after`` and
    answers ``has_more``; ``NO_PAGING`` answers once), ``page_size`` the ``limit`` it asks for; ``body`` decodes
    an answer and ``items`` says where its rows are. ``follow``: the rows are in a resource the answer names
    (a job's result file). ``identity`` names the columns that tell rows of one key apart (rowids derive from
    them). ``key_doc`` describes the key columns for the README and for error messages. ``admin`` endpoints are
    called with the admin key (OPENAI_ADMIN_KEY) when one is set.
    """

    name: str
    path: str
    doc: str
    columns: tuple[Column, ...]
    example: str
    key_doc: dict[str, str] = field(default_factory=dict)
    paging: Paging = AFTER_CURSOR
    page_size: int = 100
    body: Decoder = JSON
    items: str = "data[]"
    follow: Follow | None = None
    identity: tuple[str, ...] = ("id",)
    admin: bool = False

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns] + list(self.keys)
        if len(names) != len(set(names)):
            raise ValueError(f"table {self.name}: duplicate column names in {names}")
        missing = [name for name in self.identity if name not in names]
        if missing or not self.identity:
            raise ValueError(f"table {self.name}: identity {self.identity} names no columns {missing}")

    @property
    def identity_columns(self) -> tuple[Column, ...]:
        """The columns of ``identity``, in table order."""
        return tuple(c for c in self.columns if c.name in self.identity)

    @property
    def keys(self) -> tuple[str, ...]:
        """The required hidden key columns, in path order (also the table-valued argument order)."""
        return tuple(re.findall(r"\{(\w+)\}", self.path))

    def schema(self) -> str:
        """The CREATE TABLE statement declared to SQLite."""
        cols = [f'"{c.name}" {c.sql_type}' for c in self.columns]
        cols += [f'"{k}" TEXT HIDDEN' for k in self.keys]
        return f'CREATE TABLE "{self.name}"({", ".join(cols)})'


_METRICS = (
    ("train_loss", "Training loss at this step."),
    ("train_mean_token_accuracy", "Mean token accuracy on the training batch."),
    ("valid_loss", "Loss on a validation batch."),
    ("valid_mean_token_accuracy", "Mean token accuracy on a validation batch."),
    ("full_valid_loss", "Loss on the whole validation file."),
    ("full_valid_mean_token_accuracy", "Mean token accuracy on the whole validation file."),
)

job_checkpoints = Table(
    name="job_checkpoints",
    path="/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints",
    doc="Checkpoints saved during one fine-tuning job, with their training and validation metrics.",
    key_doc={"fine_tuning_job_id": "the fine-tuning job id, e.g. 'ftjob-abc123'"},
    columns=(
        Column("id", doc="Checkpoint id, e.g. 'ftckpt-...'."),
        Column("created_at", "INTEGER", doc="Unix time (seconds) the checkpoint was created."),
        Column("fine_tuned_model_checkpoint", doc="Model name of the checkpoint, usable for inference."),
        Column("step_number", "INTEGER", doc="Training step the checkpoint was taken at."),
        Column("metrics", "JSON", doc="All metrics of the step as JSON."),
        Column("object", doc="Always 'fine_tuning.job.checkpoint'."),
        *(Column(name, "REAL", source=f"metrics.{name}", doc=f"{doc} NULL when absent.") for name, doc in _METRICS),
    ),
    example=(
        "SELECT step_number, train_loss, full_valid_loss FROM job_checkpoints('ftjob-abc123') ORDER BY step_number"
    ),
)

fine_tuning_jobs = Table(
    name="fine_tuning_jobs",
    path="/fine_tuning/jobs",
    doc="The organization's fine-tuning jobs, one row per job.",
    columns=(
        Column("id", doc="Job id, e.g. 'ftjob-abc123'."),
        Column("object", doc="Always 'fine_tuning.job'."),
        Column("created_at", "INTEGER", doc="Unix time (seconds) the job was created."),
        Column("finished_at", "INTEGER", doc="Unix time the job finished; NULL while it runs."),
        Column("model", doc="Base model being fine-tuned."),
        Column("fine_tuned_model", doc="Name of the resulting model; NULL until the job succeeds."),
        Column("organization_id", doc="Organization that owns the job."),
        Column("status", doc="validating_files, queued, running, succeeded, failed, cancelled, or newer values."),
        Column("trained_tokens", "INTEGER", doc="Billable tokens processed; NULL while running."),
        Column("training_file", doc="File id of the training data."),
        Column("validation_file", doc="File id of the validation data, or NULL."),
        Column("seed", "INTEGER", doc="Seed used for the job."),
        Column("estimated_finish", "INTEGER", doc="Estimated unix time the job will finish, or NULL."),
        Column("user_provided_suffix", doc="Suffix given for the model name, or NULL."),
        Column("error", "JSON", doc="For failed jobs: {code, message, param}."),
        Column("hyperparameters", "JSON", doc="Hyperparameters (n_epochs, batch_size, ...)."),
        Column("method", "JSON", doc="Fine-tuning method (supervised, dpo, reinforcement) and its settings."),
        Column("integrations", "JSON", doc="Integrations such as Weights and Biases."),
        Column("metadata", "JSON", doc="Key-value pairs attached to the job."),
        Column("result_files", "JSON", doc="File ids of the result files."),
    ),
    example="SELECT id, model, status, trained_tokens FROM fine_tuning_jobs WHERE status = 'succeeded'",
)

job_events = Table(
    name="job_events",
    path="/fine_tuning/jobs/{fine_tuning_job_id}/events",
    doc="The event log of one fine-tuning job: status changes, progress messages, warnings and errors.",
    key_doc={"fine_tuning_job_id": "the fine-tuning job id, e.g. 'ftjob-abc123'"},
    columns=(
        Column("id", doc="Event id, e.g. 'ftevent-...'."),
        Column("object", doc="Always 'fine_tuning.job.event'."),
        Column("created_at", "INTEGER", doc="Unix time (seconds) of the event."),
        Column("level", doc="info, warn or error."),
        Column("message", doc="What happened, in words."),
        Column("type", doc="message or metrics."),
        Column("data", "JSON", doc="Details of the event (for metrics events: the step's metrics)."),
    ),
    example="SELECT datetime(created_at, 'unixepoch'), level, message FROM job_events('ftjob-abc123') "
    "WHERE level != 'info' ORDER BY created_at",
)

job_metrics = Table(
    name="job_metrics",
    path="/fine_tuning/jobs/{fine_tuning_job_id}",
    doc="The training curve of one fine-tuning job, step by step: the lines of the job's result file (its "
    "first result_files entry, a CSV file). Checkpoints keep only the last epochs; this is every step. A job "
    "without a result file (running, failed, cancelled) has no rows.",
    key_doc={"fine_tuning_job_id": "the fine-tuning job id, e.g. 'ftjob-abc123'"},
    columns=(
        Column("step", "INTEGER", source="row.step", doc="Training step."),
        Column("train_loss", "REAL", source="row.train_loss", doc="Training loss at this step."),
        Column("train_accuracy", "REAL", source="row.train_accuracy", doc="Token accuracy on the training batch."),
        Column("valid_loss", "REAL", source="row.valid_loss", doc="Validation loss, NULL on steps without one."),
        Column(
            "valid_mean_token_accuracy",
            "REAL",
            source="row.valid_mean_token_accuracy",
            doc="Validation token accuracy, NULL on steps without one.",
        ),
        Column(
            "metrics",
            "JSON",
            source="row",
            doc="Every column of the step's line, numbers as numbers, blanks left out: also the columns other "
            "methods write (full_valid_loss, train_mean_reward, ...).",
        ),
        Column("file_id", doc="The result file the step was read from."),
    ),
    example="SELECT step, train_loss, valid_loss FROM job_metrics('ftjob-abc123') ORDER BY step",
    paging=NO_PAGING,
    items="[]",
    follow=Follow("result_files.0", "/files/{file_id}/content", body=CSV),
    identity=("step",),
)

checkpoint_permissions = Table(
    name="checkpoint_permissions",
    path="/fine_tuning/checkpoints/{fine_tuned_model_checkpoint}/permissions",
    doc="Projects a fine-tuned model checkpoint is shared with. Needs an admin key (OPENAI_ADMIN_KEY).",
    key_doc={
        "fine_tuned_model_checkpoint": "the checkpoint's model name, "
        "e.g. 'ft:gpt-4o-mini-2024-07-18:org::abc:ckpt-step-10'"
    },
    columns=(
        Column("id", doc="Permission id, e.g. 'cp_...'."),
        Column("object", doc="Always 'checkpoint.permission'."),
        Column("created_at", "INTEGER", doc="Unix time (seconds) the permission was granted."),
        Column(
            "project_id",
            doc="Project the checkpoint is shared with; `= '...'` is sent to the API.",
            query_param="project_id",
        ),
    ),
    example="SELECT c.step_number, p.project_id FROM job_checkpoints('ftjob-abc123') c "
    "JOIN checkpoint_permissions p ON p.fine_tuned_model_checkpoint = c.fine_tuned_model_checkpoint",
    admin=True,
)

models = Table(
    name="models",
    path="/models",
    doc="Models the key can use, base and fine-tuned.",
    columns=(
        Column("id", doc="Model id, e.g. 'gpt-4o-mini' or 'ft:gpt-4o-mini-2024-07-18:org::abc123'."),
        Column("object", doc="Always 'model'."),
        Column("created", "INTEGER", doc="Unix time (seconds) the model was created."),
        Column("owned_by", doc="Organization that owns the model ('openai', 'system' or yours)."),
        Column(
            "shutdown_date",
            doc="ISO date (YYYY-MM-DD) the model stops serving, or NULL if none is announced. A fine-tuned model "
            "serves until its base model's shutdown date.",
        ),
    ),
    example="SELECT id, datetime(created, 'unixepoch') FROM models WHERE id LIKE 'ft:%' ORDER BY created DESC",
    paging=NO_PAGING,
)

files = Table(
    name="files",
    path="/files",
    doc="Uploaded files: training and validation data, batch input and output, results.",
    columns=(
        Column("id", doc="File id, e.g. 'file-abc123'."),
        Column("object", doc="Always 'file'."),
        Column("bytes", "INTEGER", doc="Size in bytes."),
        Column("created_at", "INTEGER", doc="Unix time (seconds) of the upload."),
        Column("expires_at", "INTEGER", doc="Unix time the file expires, or NULL."),
        Column("filename", doc="Name given at upload."),
        Column(
            "purpose", doc="fine-tune, batch, assistants, ...; `= '...'` is sent to the API.", query_param="purpose"
        ),
        Column("status", doc="uploaded, processed or error (deprecated by the API)."),
        Column("status_details", doc="Why validation failed, for fine-tune files (deprecated by the API)."),
    ),
    example="SELECT filename, bytes FROM files WHERE purpose = 'fine-tune' ORDER BY created_at DESC",
    page_size=10_000,
)

batches = Table(
    name="batches",
    path="/batches",
    doc="Batch API jobs with their status, files and request counts.",
    columns=(
        Column("id", doc="Batch id, e.g. 'batch_abc123'."),
        Column("object", doc="Always 'batch'."),
        Column("endpoint", doc="API endpoint the batch calls, e.g. '/v1/chat/completions'."),
        Column("model", doc="Model used, when the API reports it."),
        Column("errors", "JSON", doc="Validation errors of the input file, or NULL."),
        Column("input_file_id", doc="File id of the input."),
        Column("completion_window", doc="Time frame, e.g. '24h'."),
        Column("status", doc="validating, in_progress, finalizing, completed, failed, expired, cancelling, ..."),
        Column("output_file_id", doc="File id of the successful results, or NULL."),
        Column("error_file_id", doc="File id of the failed requests, or NULL."),
        Column("created_at", "INTEGER", doc="Unix time (seconds) the batch was created."),
        Column("in_progress_at", "INTEGER", doc="Unix time it started, or NULL."),
        Column("expires_at", "INTEGER", doc="Unix time it expires, or NULL."),
        Column("finalizing_at", "INTEGER", doc="Unix time it started finalizing, or NULL."),
        Column("completed_at", "INTEGER", doc="Unix time it completed, or NULL."),
        Column("failed_at", "INTEGER", doc="Unix time it failed, or NULL."),
        Column("expired_at", "INTEGER", doc="Unix time it expired, or NULL."),
        Column("cancelling_at", "INTEGER", doc="Unix time cancelling began, or NULL."),
        Column("cancelled_at", "INTEGER", doc="Unix time it was cancelled, or NULL."),
        Column("request_counts", "JSON", doc="{total, completed, failed}."),
        Column("usage", "JSON", doc="Token usage, when the API reports it."),
        Column("metadata", "JSON", doc="Key-value pairs attached to the batch."),
    ),
    example="SELECT id, status, json_extract(request_counts, '$.failed') AS failed FROM batches "
    "WHERE status != 'completed'",
)

# -- the organization (admin key) ----------------------------------------------------------------------------
# These endpoints answer only an admin key (OPENAI_ADMIN_KEY); a project key is refused with HTTP 401.

_PROJECT_KEY = {"project_id": "the project id, e.g. 'proj_abc'"}

projects = Table(
    name="projects",
    path="/organization/projects",
    doc="The organization's projects that are not archived (the API's default). Needs an admin key (OPENAI_ADMIN_KEY).",
    columns=(
        Column("id", doc="Project id, e.g. 'proj_abc'."),
        Column("object", doc="Always 'organization.project'."),
        Column("name", doc="Project name, as it appears in reporting."),
        Column("created_at", "INTEGER", doc="Unix time (seconds) the project was created."),
        Column("archived_at", "INTEGER", doc="Unix time it was archived, or NULL."),
        Column("status", doc="active or archived."),
        Column("external_key_id", doc="External key associated with the project, or NULL."),
        Column("residency", doc="Data residency, e.g. 'GLOBAL' or 'EU_STORAGE_PROCESSING'; NULL when not sent."),
    ),
    example="SELECT name, datetime(created_at, 'unixepoch') FROM projects ORDER BY created_at",
    admin=True,
)

project_api_keys = Table(
    name="project_api_keys",
    path="/organization/projects/{project_id}/api_keys",
    doc="The API keys of one project (their redacted values) and who owns them. Needs an admin key (OPENAI_ADMIN_KEY).",
    key_doc=_PROJECT_KEY,
    columns=(
        Column("id", doc="Key id, e.g. 'key_abc'."),
        Column("object", doc="Always 'organization.project.api_key'."),
        Column("name", doc="Name given to the key."),
        Column("redacted_value", doc="The key with most of it hidden, e.g. 'sk-abc...def'."),
        Column("created_at", "INTEGER", doc="Unix time (seconds) the key was created."),
        Column("last_used_at", "INTEGER", doc="Unix time the key was last used, or NULL."),
        Column(
            "owner_project_access",
            doc="active or inactive: whether the owner still has access to the project; `= '...'` is sent to "
            "the API (without it, the API may leave out keys of owners who lost access).",
            query_param="owner_project_access",
        ),
        Column("owner_type", source="owner.type", doc="user or service_account."),
        Column("owner_user_id", source="owner.user.id", doc="Id of the owning user; NULL for a service account's key."),
        Column("owner_user_email", source="owner.user.email", doc="Email of the owning user, or NULL."),
        Column(
            "owner_service_account_id",
            source="owner.service_account.id",
            doc="Id of the owning service account; NULL for a user's key.",
        ),
        Column("owner", "JSON", doc="The owner: {type, user: {...}} or {type, service_account: {...}}."),
    ),
    example="SELECT p.name, k.name, k.owner_type, datetime(k.last_used_at, 'unixepoch') AS last_used "
    "FROM projects p JOIN project_api_keys k ON k.project_id = p.id ORDER BY k.last_used_at",
    admin=True,
)

project_users = Table(
    name="project_users",
    path="/organization/projects/{project_id}/users",
    doc="The members of one project and their role in it. Needs an admin key (OPENAI_ADMIN_KEY).",
    key_doc=_PROJECT_KEY,
    columns=(
        Column("id", doc="User id, e.g. 'user_abc'."),
        Column("object", doc="Always 'organization.project.user'."),
        Column("name", doc="The user's name, or NULL."),
        Column("email", doc="The user's email address, or NULL."),
        Column("role", doc="owner or member (in this project)."),
        Column("added_at", "INTEGER", doc="Unix time (seconds) the user was added to the project."),
    ),
    example="SELECT p.name, u.email, u.role FROM projects p JOIN project_users u ON u.project_id = p.id "
    "ORDER BY p.name, u.email",
    admin=True,
)

project_service_accounts = Table(
    name="project_service_accounts",
    path="/organization/projects/{project_id}/service_accounts",
    doc="The service accounts of one project (bot identities with their own API keys). Needs an admin key "
    "(OPENAI_ADMIN_KEY).",
    key_doc=_PROJECT_KEY,
    columns=(
        Column("id", doc="Service account id, e.g. 'svc_acct_abc'."),
        Column("object", doc="Always 'organization.project.service_account'."),
        Column("name", doc="Name of the service account."),
        Column("role", doc="owner, member or none."),
        Column("created_at", "INTEGER", doc="Unix time (seconds) the service account was created."),
    ),
    example="SELECT p.name, s.name, s.role FROM projects p JOIN project_service_accounts s ON s.project_id = p.id",
    admin=True,
)

project_rate_limits = Table(
    name="project_rate_limits",
    path="/organization/projects/{project_id}/rate_limits",
    doc="The rate limits of one project, one row per model. Needs an admin key (OPENAI_ADMIN_KEY).",
    key_doc=_PROJECT_KEY,
    columns=(
        Column("id", doc="Rate limit id, e.g. 'rl-gpt-4o-mini'."),
        Column("object", doc="Always 'project.rate_limit'."),
        Column("model", doc="The model the limits apply to."),
        Column("max_requests_per_1_minute", "INTEGER", doc="Requests per minute."),
        Column("max_tokens_per_1_minute", "INTEGER", doc="Tokens per minute."),
        Column("max_images_per_1_minute", "INTEGER", doc="Images per minute; NULL for models without images."),
        Column(
            "max_audio_megabytes_per_1_minute",
            "INTEGER",
            doc="Audio megabytes per minute; NULL for models without audio.",
        ),
        Column("max_requests_per_1_day", "INTEGER", doc="Requests per day, for models that have that limit."),
        Column("batch_1_day_max_input_tokens", "INTEGER", doc="Batch input tokens per day, for models that have it."),
    ),
    example="SELECT p.name, r.model, r.max_tokens_per_1_minute FROM projects p "
    "JOIN project_rate_limits r ON r.project_id = p.id WHERE r.model LIKE 'gpt-4o%' ORDER BY p.name, r.model",
    admin=True,
)

users = Table(
    name="users",
    path="/organization/users",
    doc="The organization's members. Needs an admin key (OPENAI_ADMIN_KEY).",
    columns=(
        Column("id", doc="User id, e.g. 'user_abc'."),
        Column("object", doc="Always 'organization.user'."),
        Column("name", doc="The user's name, or NULL."),
        Column("email", doc="The user's email address, or NULL."),
        Column("role", doc="owner or reader (in the organization)."),
        Column("added_at", "INTEGER", doc="Unix time (seconds) the user was added to the organization."),
        Column("is_default", "INTEGER", doc="1 for the organization's default user, 0 else; NULL when not sent."),
        Column("created", "INTEGER", doc="Unix time the user's account was created; NULL when not sent."),
        Column("is_service_account", "INTEGER", doc="1 when the user is a service account; NULL when not sent."),
        Column(
            "is_scale_tier_authorized_purchaser",
            "INTEGER",
            doc="1 when the user may buy Scale Tier; NULL when not sent.",
        ),
        Column("is_scim_managed", "INTEGER", doc="1 when the user is managed through SCIM; NULL when not sent."),
        Column("api_key_last_used_at", "INTEGER", doc="Unix time the user's API keys were last used, or NULL."),
        Column("technical_level", doc="Technical level metadata, or NULL."),
        Column("developer_persona", doc="Developer persona metadata, or NULL."),
        Column("user", "JSON", doc="Account details: {object, id, email, name, picture, enabled, banned, ...}."),
        Column("projects", "JSON", doc="The user's projects when the API includes them: {object, data: [...]}."),
    ),
    example="SELECT email, role, datetime(added_at, 'unixepoch') FROM users ORDER BY added_at",
    admin=True,
)

invites = Table(
    name="invites",
    path="/organization/invites",
    doc="Invitations to join the organization, pending, accepted or expired. Needs an admin key (OPENAI_ADMIN_KEY).",
    columns=(
        Column("id", doc="Invite id, e.g. 'invite-abc'."),
        Column("object", doc="Always 'organization.invite'."),
        Column("email", doc="Email address the invite was sent to."),
        Column("role", doc="owner or reader."),
        Column("status", doc="accepted, expired or pending."),
        Column("created_at", "INTEGER", doc="Unix time (seconds) the invite was sent."),
        Column("expires_at", "INTEGER", doc="Unix time the invite expires, or NULL."),
        Column("accepted_at", "INTEGER", doc="Unix time it was accepted, or NULL."),
        Column("projects", "JSON", doc="Projects granted on acceptance: [{id, role}]."),
    ),
    example="SELECT email, role, datetime(expires_at, 'unixepoch') FROM invites WHERE status = 'pending'",
    admin=True,
)

audit_logs = Table(
    name="audit_logs",
    path="/organization/audit_logs",
    doc="User actions and configuration changes in the organization: logins, keys, projects, members, rate "
    "limits. Needs an admin key (OPENAI_ADMIN_KEY).",
    columns=(
        Column("id", doc="Audit log id."),
        Column("type", doc="Event type, e.g. 'api_key.created', 'project.archived', 'login.succeeded'."),
        Column("effective_at", "INTEGER", doc="Unix time (seconds) of the event."),
        Column("project_id", source="project.id", doc="Project the action was scoped to, or NULL."),
        Column("project_name", source="project.name", doc="That project's name, or NULL."),
        Column("actor_type", source="actor.type", doc="session (someone signed in) or api_key."),
        Column("session_user_email", source="actor.session.user.email", doc="For session actors: who, by email."),
        Column("session_ip_address", source="actor.session.ip_address", doc="For session actors: from which IP."),
        Column("api_key_id", source="actor.api_key.id", doc="For api_key actors: the key's tracking id."),
        Column(
            "api_key_user_email",
            source="actor.api_key.user.email",
            doc="For api_key actors: the email of the user who owns the key, or NULL for a service account.",
        ),
        Column("actor", "JSON", doc="The whole actor: {type, session: {...}} or {type, api_key: {...}}."),
    ),
    example="SELECT datetime(effective_at, 'unixepoch'), type, coalesce(session_user_email, api_key_user_email) AS who "
    "FROM audit_logs ORDER BY effective_at DESC LIMIT 10",
    admin=True,
)

TABLES: tuple[Table, ...] = (
    job_checkpoints,
    fine_tuning_jobs,
    job_events,
    job_metrics,
    checkpoint_permissions,
    models,
    files,
    batches,
    projects,
    project_api_keys,
    project_users,
    project_service_accounts,
    project_rate_limits,
    users,
    invites,
    audit_logs,
)
