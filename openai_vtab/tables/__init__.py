"""The tables: one declarative ``Table`` value per OpenAI endpoint, grouped by family, and ``TABLES``.

Adding an endpoint means adding a value to a family module (plus a route in the fake API and a README section),
never a change to the engine.
"""

from __future__ import annotations

from .declare import COLUMN_TYPES, Column, Table
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

__all__ = [
    "COLUMN_TYPES",
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
