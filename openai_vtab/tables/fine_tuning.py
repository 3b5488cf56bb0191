"""Fine-tuning: jobs, their checkpoints, events and training curves, and checkpoint permissions."""

from __future__ import annotations

from ..paging import CSV, NO_PAGING, Follow
from .declare import Column, Table, Writes

__all__ = ["checkpoint_permissions", "fine_tuning_jobs", "job_checkpoints", "job_events", "job_metrics"]

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
        Column(
            "suffix",
            source="user_provided_suffix",
            doc="The suffix of the model name, as INSERT takes it (the same value as user_provided_suffix).",
        ),
    ),
    example="SELECT id, model, status, trained_tokens FROM fine_tuning_jobs WHERE status = 'succeeded'",
    writes=Writes(
        noun="fine-tuning job",
        create="/fine_tuning/jobs",
        create_columns=(
            "model",
            "training_file",
            "validation_file",
            "suffix",
            "seed",
            "method",
            "metadata",
            "hyperparameters",
            "integrations",
        ),
        required=("model", "training_file"),
        arrays=("integrations",),
        check="SELECT id, status, training_file, created_at FROM fine_tuning_jobs ORDER BY created_at DESC LIMIT 5",
        status={
            "cancelled": "/fine_tuning/jobs/{id}/cancel",
            "paused": "/fine_tuning/jobs/{id}/pause",
            "running": "/fine_tuning/jobs/{id}/resume",
        },
    ),
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
    example="SELECT c.fine_tuning_job_id, c.step_number, p.project_id FROM job_checkpoints c "
    "JOIN checkpoint_permissions p ON p.fine_tuned_model_checkpoint = c.fine_tuned_model_checkpoint "
    "WHERE c.fine_tuning_job_id IN (SELECT id FROM fine_tuning_jobs WHERE status = 'succeeded')",
    admin=True,
    writes=Writes(
        noun="checkpoint permission",
        create="/fine_tuning/checkpoints/{fine_tuned_model_checkpoint}/permissions",
        create_columns=("project_id",),
        required=("fine_tuned_model_checkpoint", "project_id"),
        as_list={"project_id": "project_ids"},
        created="data[]",
        check="SELECT id, project_id, created_at FROM checkpoint_permissions('{fine_tuned_model_checkpoint}')",
        delete="/fine_tuning/checkpoints/{fine_tuned_model_checkpoint}/permissions/{id}",
    ),
)
