"""The tables: one declarative ``Table`` value per OpenAI endpoint, grouped by family, and ``TABLES``.

Adding an endpoint means adding a value to a family module (plus a route in the fake API and a README section),
never a change to the engine.
"""

from __future__ import annotations

from .declare import COLUMN_TYPES, Bound, Column, Option, Table, Writes
from .fine_tuning import checkpoint_permissions, fine_tuning_jobs, job_checkpoints, job_events, job_metrics
from .organization import (
    audit_logs,
    invites,
    project_api_keys,
    project_rate_limits,
    project_service_accounts,
    project_users,
    projects,
    users,
)
from .platform import batches, files, models
from .usage import (
    USAGE_TABLES,
    costs,
    usage_audio_speeches,
    usage_audio_transcriptions,
    usage_code_interpreter_sessions,
    usage_completions,
    usage_embeddings,
    usage_file_search_calls,
    usage_images,
    usage_moderations,
    usage_vector_stores,
    usage_web_search_calls,
)

__all__ = [
    "COLUMN_TYPES",
    "TABLES",
    "USAGE_TABLES",
    "Bound",
    "Column",
    "Option",
    "Table",
    "Writes",
    "audit_logs",
    "batches",
    "checkpoint_permissions",
    "costs",
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
    "usage_audio_speeches",
    "usage_audio_transcriptions",
    "usage_code_interpreter_sessions",
    "usage_completions",
    "usage_embeddings",
    "usage_file_search_calls",
    "usage_images",
    "usage_moderations",
    "usage_vector_stores",
    "usage_web_search_calls",
    "users",
]

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
    *USAGE_TABLES,
)
