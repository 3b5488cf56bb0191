"""The organization: projects, their keys, members, service accounts and rate limits, users,
invites and the audit log. These endpoints answer only an admin key (OPENAI_ADMIN_KEY)."""

from __future__ import annotations

from .declare import Bound, Column, Table

__all__ = [
    "audit_logs",
    "invites",
    "project_api_keys",
    "project_rate_limits",
    "project_service_accounts",
    "project_users",
    "projects",
    "users",
]

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
        Column(
            "effective_at",
            "INTEGER",
            doc="Unix time (seconds) of the event; `>=`, `>`, `<=`, `<` (and `=`) are sent to the API as "
            "`effective_at[gte]`, `[gt]`, `[lte]`, `[lt]`.",
            bounds=(
                Bound("effective_at[gte]", (">=", "=")),
                Bound("effective_at[gt]", (">",)),
                Bound("effective_at[lte]", ("<=",)),
                Bound("effective_at[lt]", ("<",)),
            ),
        ),
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
