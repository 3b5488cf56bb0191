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
    "batches",
    "checkpoint_permissions",
    "files",
    "fine_tuning_jobs",
    "job_checkpoints",
    "job_events",
    "job_metrics",
    "models",
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

TABLES: tuple[Table, ...] = (
    job_checkpoints,
    fine_tuning_jobs,
    job_events,
    job_metrics,
    checkpoint_permissions,
    models,
    files,
    batches,
)
