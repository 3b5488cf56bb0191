"""The rest of the platform a fine-tuning history refers to: models, files and batches."""

from __future__ import annotations

from ..paging import NO_PAGING
from .declare import Column, Table, Writes

__all__ = ["batches", "files", "models"]

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
    writes=Writes(noun="file", delete="/files/{id}"),
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
    writes=Writes(noun="batch", status={"cancelled": "/batches/{id}/cancel"}),
)
