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

__all__ = ["TABLES", "Column", "Table", "fine_tuning_jobs", "job_checkpoints"]

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
    """An OpenAI list endpoint as a read-only SQL table.

    ``path`` is relative to the base URL; each ``{placeholder}`` is a required hidden key column.
    ``paged`` endpoints take ``limit``/``after`` and answer ``has_more``; the others answer one list.
    ``key_doc`` describes the key columns for the README and for error messages.
    """

    name: str
    path: str
    doc: str
    columns: tuple[Column, ...]
    example: str
    key_doc: dict[str, str] = field(default_factory=dict)
    paged: bool = True
    page_size: int = 100

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns] + list(self.keys)
        if len(names) != len(set(names)):
            raise ValueError(f"table {self.name}: duplicate column names in {names}")
        if "id" not in names:
            raise ValueError(f"table {self.name}: needs an id column (rowids are derived from it)")

    @property
    def keys(self) -> tuple[str, ...]:
        """The required hidden key columns, in path order (also the table-valued argument order)."""
        return tuple(re.findall(r"\{(\w+)\}", self.path))

    @property
    def endpoint(self) -> str:
        """The operation, as the API reference writes it."""
        return f"GET {self.path}"

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

TABLES: tuple[Table, ...] = (job_checkpoints, fine_tuning_jobs)
