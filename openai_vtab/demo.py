"""The sample organization behind ``openai-vtab --demo``: fine-tuning jobs a small team might really have.

Fourteen jobs of four projects on four base models, in every status the API reports: succeeded, failed
(with the API's error codes), running, cancelled, queued and validating_files. Each job that trained has
one checkpoint per finished epoch, as the API keeps them, with loss and token-accuracy curves shaped like
real ones; two long runs overfit, so their best checkpoint is not their last. Every job carries an
``experiment`` tag in its metadata, for joins with a local table of experiments. Events, files, models and
a few evaluation batches are there too, and the organization around them (admin tables): its members, the
projects with their members, service accounts, API keys and rate limits, invites, and an audit log.

Everything comes from fixed seeds: every run of the demo serves the same ids, numbers and timestamps.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from .testing import FakeOpenAI

__all__ = ["EXPERIMENTS", "ORGANIZATION_ID", "PROJECTS", "populate"]

ORGANIZATION_ID = "org-Qm4XvT8dLw2bN7cRk5Hy1sJe"
ORGANIZATION_SLUG = "acme-demo"
# 2025-05-05 09:00 UTC: after every base model below was released.
START = 1_746_435_600
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

#: The experiment tags in the sample jobs' ``metadata``, with what each one tried.
EXPERIMENTS: dict[str, str] = {
    "triage-baseline": "Route support tickets to one of 12 queues; 1,200 labelled tickets",
    "triage-more-data": "Same task with 4,800 tickets, including the long tail of rare queues",
    "sql-v1": "Write SQLite queries from questions about the analytics schema",
    "sql-v2-lr": "sql-v1 with a higher learning rate and more epochs",
    "tone-distill": "Rewrite replies in the house tone, distilled from a larger model's drafts",
    "invoice-v1": "Pull totals and line items out of supplier invoices",
}

ERRORS: dict[str, tuple[str, str | None]] = {
    "invalid_training_file": (
        "The job failed due to an invalid training file. Expected file to have JSONL format, where every line "
        "is a valid JSON dictionary. Line 212 is not a dictionary.",
        "training_file",
    ),
    "invalid_n_examples": ("Training file has 7 example(s), but must have at least 10 examples", "training_file"),
    "server_error": ("The job failed due to an internal error. Retrying the job usually resolves it.", None),
}


@dataclass(frozen=True)
class _Job:
    suffix: str
    model: str
    status: str
    experiment: str
    epochs: int  # planned
    done: int  # epochs finished, one checkpoint each
    examples: int
    batch_size: int
    lr: float
    start_loss: float
    floor: float  # where the training loss levels off
    rate: float  # how fast it gets there, per epoch
    best_epoch: int  # validation loss climbs after this epoch
    error: str | None = None
    method: str = "supervised"


# Oldest first. Loss curves: start, floor, rate, best epoch (99 = never overfits within the run).
# fmt: off
_JOBS = (
    _Job("triage", "gpt-4o-mini-2024-07-18", "succeeded", "triage-baseline", 3, 3, 1200, 8, 1.8, 1.42, 0.38, 0.9, 99),
    _Job("triage", "gpt-4.1-mini-2025-04-14", "succeeded", "triage-baseline", 3, 3, 1200, 8, 1.8, 1.31, 0.31, 1.0, 99),
    _Job("invoice-extract", "gpt-4o-mini-2024-07-18", "failed", "invoice-v1", 3, 0, 640, 4, 2.0, 0, 0, 0, 99,
         error="invalid_training_file"),
    _Job("triage-xl", "gpt-4o-mini-2024-07-18", "succeeded", "triage-more-data", 4, 4, 4800, 16, 1.6, 1.38, 0.24,
         0.8, 99),
    _Job("sql-writer", "gpt-4o-2024-08-06", "succeeded", "sql-v1", 5, 5, 900, 4, 1.0, 1.05, 0.05, 0.9, 99),
    _Job("invoice-extract", "gpt-4.1-mini-2025-04-14", "failed", "invoice-v1", 3, 0, 7, 1, 2.0, 0, 0, 0, 99,
         error="invalid_n_examples"),
    _Job("sql-writer", "gpt-4o-2024-08-06", "succeeded", "sql-v2-lr", 8, 8, 900, 4, 2.5, 1.07, 0.09, 1.1, 5),
    _Job("sql-writer", "gpt-4.1-nano-2025-04-14", "succeeded", "sql-v2-lr", 6, 6, 900, 4, 2.5, 1.22, 0.13, 0.9, 99),
    _Job("tone", "gpt-4o-mini-2024-07-18", "succeeded", "tone-distill", 10, 10, 2400, 8, 1.8, 1.64, 0.06, 0.7, 6),
    _Job("tone", "gpt-4o-2024-08-06", "failed", "tone-distill", 4, 2, 2400, 8, 1.8, 1.55, 0.23, 0.6, 99,
         error="server_error"),
    _Job("triage-xl", "gpt-4.1-nano-2025-04-14", "cancelled", "triage-more-data", 4, 1, 4800, 16, 1.6, 1.44, 0.29,
         0.8, 99),
    _Job("sql-writer", "gpt-4.1-mini-2025-04-14", "running", "sql-v2-lr", 6, 2, 900, 4, 2.5, 1.12, 0.15, 1.0, 99),
    _Job("triage-dpo", "gpt-4o-mini-2024-07-18", "queued", "triage-more-data", 2, 0, 1500, 8, 1.0, 0, 0, 0, 99,
         method="dpo"),
    _Job("tone", "gpt-4.1-nano-2025-04-14", "validating_files", "tone-distill", 5, 0, 2400, 8, 1.8, 0, 0, 0, 99),
)
# fmt: on

# Base models with their release time and a shutdown date. The dates are sample data for the demo, not dates
# OpenAI has announced: they only make "which of our models stop, and when" answerable offline.
_BASE_MODELS = (
    ("gpt-4o-mini-2024-07-18", 1_721_172_717, "2027-03-31"),
    ("gpt-4o-2024-08-06", 1_722_814_719, "2027-01-28"),
    ("gpt-4.1-mini-2025-04-14", 1_744_318_173, None),
    ("gpt-4.1-nano-2025-04-14", 1_744_321_025, "2027-09-30"),
)

#: The organization's projects (id -> name): the best checkpoints of two experiments are shared with them.
PROJECTS: dict[str, str] = {
    "proj_Kd82nQe5VwTz1sYbR4mX": "support-bot",
    "proj_Ra7cL0pXm3HfW9uJq2Ne": "analytics",
    "proj_Tz4bN8qGe2LkV6dSw1Hc": "comms",
}
# Which projects get each experiment's best checkpoint.
_SHARED = {
    "sql-v2-lr": ("proj_Kd82nQe5VwTz1sYbR4mX", "proj_Ra7cL0pXm3HfW9uJq2Ne"),
    "tone-distill": ("proj_Tz4bN8qGe2LkV6dSw1Hc",),
}
# Result files log validation metrics every this many steps, as the API does every so often.
_VALID_EVERY = 15


def populate(api: FakeOpenAI) -> None:
    """Fill ``api`` with the sample organization: jobs with their checkpoints and events, files, models, batches."""
    _Organization(api).build()


class _Organization:
    """Builds the sample data; one seeded generator makes every id and every bit of noise."""

    def __init__(self, api: FakeOpenAI) -> None:
        self.api = api
        self.rng = random.Random(20250505)
        # Per succeeded job: its experiment and (full_valid_loss, checkpoint model name) of each checkpoint.
        self.checkpoints: list[tuple[str, list[tuple[float, str]]]] = []

    def ident(self, prefix: str, length: int = 24) -> str:
        return prefix + "".join(self.rng.choice(ALPHABET) for _ in range(length))

    def build(self) -> None:
        for model, created, shutdown in _BASE_MODELS:
            self.api.add_model(model, owned_by="system", created=created, shutdown_date=shutdown)
        created = START
        for spec in _JOBS:
            created += self.rng.randrange(20, 40) * 3600  # a new job every day or so
            self.job(spec, created)
        for day, status, total, failed in (
            (9, "completed", 500, 0),
            (12, "completed", 500, 12),
            (18, "in_progress", 800, 0),
        ):
            self.batch(START + day * 86_400, status, total, failed)
        for experiment, saved in self.checkpoints:
            for project in _SHARED.get(experiment, ()):
                self.api.add_permission(min(saved)[1], project)
        _Members(self.api).build()
        _Spending(self.api).build()

    def job(self, spec: _Job, created: int) -> None:
        api = self.api
        job_id = self.ident("ftjob-")
        train = api.add_file(f"{spec.suffix}-train.jsonl", id=self.ident("file-", 22), bytes=spec.examples * 1400)
        valid = api.add_file(f"{spec.suffix}-valid.jsonl", id=self.ident("file-", 22), bytes=spec.examples * 140)
        steps_per_epoch = math.ceil(spec.examples / spec.batch_size)
        epoch_seconds = steps_per_epoch * 3 + 120
        started = created + 900  # file validation and the queue take a quarter of an hour
        ended = spec.status in ("succeeded", "failed", "cancelled")
        finished = started + spec.done * epoch_seconds + 300 if ended else None
        if spec.error in ("invalid_training_file", "invalid_n_examples"):
            finished = created + 60  # rejected while its files were validated
        model_name = f"ft:{spec.model}:{ORGANIZATION_SLUG}:{spec.suffix}:{job_id[-8:]}"
        succeeded = spec.status == "succeeded"
        result_file = self.ident("file-", 22) if succeeded else None
        hyperparameters: dict[str, float] = {
            "n_epochs": spec.epochs,
            "batch_size": spec.batch_size,
            "learning_rate_multiplier": spec.lr,
        }
        if spec.method == "dpo":
            hyperparameters["beta"] = 0.1
        error = None
        if spec.error is not None:
            message, param = ERRORS[spec.error]
            error = {"code": spec.error, "message": message, "param": param}
        api.add_job(
            job_id,
            model=spec.model,
            created_at=created,
            finished_at=finished,
            status=spec.status,
            fine_tuned_model=model_name if succeeded else None,
            organization_id=ORGANIZATION_ID,
            training_file=train["id"],
            validation_file=valid["id"],
            result_files=[result_file] if succeeded else [],
            hyperparameters=hyperparameters,
            trained_tokens=spec.examples * spec.done * 310 if succeeded else None,
            error=error,
            user_provided_suffix=spec.suffix,
            seed=self.rng.randrange(2**31),
            estimated_finish=started + spec.epochs * epoch_seconds if spec.status == "running" else None,
            metadata={"experiment": spec.experiment, "owner": self.rng.choice(("priya", "tomas", "mei", "jonas"))},
            method={"type": spec.method, spec.method: {"hyperparameters": hyperparameters}},
        )
        if succeeded:
            api.add_model(model_name, owned_by=ORGANIZATION_ID, created=finished)

        def event(at: int, message: str, level: str = "info") -> None:
            api.add_event(job_id, message, level=level, id=self.ident("ftevent-"), created_at=at)

        event(created + 5, f"Validating training file: {train['id']}")
        if spec.error in ("invalid_training_file", "invalid_n_examples"):
            event(created + 60, ERRORS[spec.error][0], level="error")
            return
        if spec.status == "validating_files":
            return
        event(created + 60, "Files validated, moving job to queued state")
        if spec.status == "queued":
            return
        event(started, "Fine-tuning job started")
        saved = [
            self.checkpoint(spec, job_id, epoch, steps_per_epoch, started + epoch * epoch_seconds)
            for epoch in range(1, spec.done + 1)
        ]
        if succeeded:
            self.checkpoints.append((spec.experiment, [(m["full_valid_loss"], name) for m, name in saved]))
            curve = _curve(spec, job_id, steps_per_epoch, saved)
            self.api.add_result_file(job_id, curve, id=result_file, created_at=finished)
        if finished is None:
            return
        if spec.status == "failed":
            event(finished, ERRORS[spec.error or "server_error"][0], level="error")
        elif spec.status == "cancelled":
            event(finished, "Fine-tuning job cancelled", level="warn")
        else:
            event(finished - 60, f"New fine-tuned model created: {model_name}")
            event(finished, "The job has successfully completed")

    def batch(self, created: int, status: str, total: int, failed: int) -> None:
        """An evaluation batch of chat completions, as teams run against their fine-tuned models."""
        done = status == "completed"
        source = self.api.add_file(
            f"eval-{created}.jsonl", purpose="batch", id=self.ident("file-", 22), bytes=total * 900
        )
        self.api.add_batch(
            id=self.ident("batch_", 32),
            input_file_id=source["id"],
            status=status,
            output_file_id=self.ident("file-", 22) if done else None,
            error_file_id=self.ident("file-", 22) if failed else None,
            created_at=created,
            in_progress_at=created + 40,
            expires_at=created + 86_400,
            finalizing_at=created + 3_400 if done else None,
            completed_at=created + 3_600 if done else None,
            request_counts={"total": total, "completed": total - failed if done else total * 2 // 5, "failed": failed},
            metadata={"purpose": "eval"},
        )

    def checkpoint(
        self, spec: _Job, job_id: str, epoch: int, steps_per_epoch: int, at: int
    ) -> tuple[dict[str, float], str]:
        """One end-of-epoch checkpoint, and the metrics event the API logs with it: its metrics and model name."""
        rng = self.rng
        train = spec.floor + (spec.start_loss - spec.floor) * math.exp(-spec.rate * epoch) + rng.uniform(-0.02, 0.02)
        # Validation loss sits a little above the training loss, and climbs once the model starts memorising.
        gap = 0.04 + 0.012 * epoch + 0.045 * max(0, epoch - spec.best_epoch) ** 1.5
        metrics = {
            "train_loss": round(train, 4),
            "train_mean_token_accuracy": round(min(0.99, 1.02 - 0.42 * train), 4),
            "valid_loss": round(train + gap + rng.uniform(-0.03, 0.03), 4),
            "full_valid_loss": round(train + gap + rng.uniform(-0.008, 0.008), 4),
        }
        metrics["valid_mean_token_accuracy"] = round(min(0.99, 1.0 - 0.41 * metrics["valid_loss"]), 4)
        metrics["full_valid_mean_token_accuracy"] = round(min(0.99, 1.0 - 0.4 * metrics["full_valid_loss"]), 4)
        step = epoch * steps_per_epoch
        name = f"ft:{spec.model}:{ORGANIZATION_SLUG}:{spec.suffix}:{job_id[-8:]}:ckpt-step-{step}"
        self.api.add_checkpoint(
            job_id, step, metrics, id=self.ident("ftckpt_"), created_at=at, fine_tuned_model_checkpoint=name
        )
        total = steps_per_epoch * spec.epochs
        self.api.add_event(
            job_id,
            f"Step {step}/{total}: training loss={metrics['train_loss']:.4f}, "
            f"validation loss={metrics['valid_loss']:.4f}, full validation loss={metrics['full_valid_loss']:.4f}",
            id=self.ident("ftevent-"),
            created_at=at - 1,
            type="metrics",
            data={"step": step, **metrics},
        )
        return metrics, name


# The people of the organization: (login, name, organization role). The job owners in the jobs' metadata.
_PEOPLE = (
    ("priya", "Priya Raman", "owner"),
    ("tomas", "Tomás Novak", "reader"),
    ("mei", "Mei Lin", "owner"),
    ("jonas", "Jonas Berg", "reader"),
)
# Per project name: its members (login, project role), service accounts, and rate limits per model
# (requests/min, tokens/min, batch input tokens/day or None).
_MEMBERS = {
    "support-bot": (("priya", "owner"), ("tomas", "member"), ("jonas", "member")),
    "analytics": (("mei", "owner"), ("priya", "member")),
    "comms": (("jonas", "owner"), ("mei", "member")),
}
_SERVICE_ACCOUNTS = {"support-bot": ("ticket-router",), "analytics": ("nightly-etl",), "comms": ()}
_RATE_LIMITS = {
    "support-bot": (
        ("gpt-4o-mini-2024-07-18", 10_000, 4_000_000, 40_000_000),
        ("gpt-4.1-mini-2025-04-14", 5_000, 2_000_000, None),
    ),
    "analytics": (
        ("gpt-4o-2024-08-06", 1_000, 450_000, 9_000_000),
        ("gpt-4.1-nano-2025-04-14", 3_000, 1_000_000, None),
    ),
    "comms": (("gpt-4o-mini-2024-07-18", 2_000, 600_000, None),),
}


class _Members:
    """The organization around the jobs: members, projects with their people, keys and limits, invites, and the
    audit log of how it came to be. Its own generator, so that the jobs' ids and numbers stay as they are."""

    def __init__(self, api: FakeOpenAI) -> None:
        self.api = api
        self.rng = random.Random(f"{ORGANIZATION_SLUG}-members")
        self.users: dict[str, dict[str, Any]] = {}

    def ident(self, prefix: str, length: int = 24) -> str:
        return prefix + "".join(self.rng.choice(ALPHABET) for _ in range(length))

    def log(self, kind: str, at: int, actor: dict[str, Any], project: str | None = None, **details: Any) -> None:
        self.api.add_audit_log(
            kind, actor, project_id=project, details=details or None, id=self.ident("audit_log-"), effective_at=at
        )

    def build(self) -> None:
        api = self.api
        # The organization was set up about four months before the first job.
        founded = START - 120 * 86_400
        for n, (login, name, role) in enumerate(_PEOPLE):
            self.users[login] = api.add_user(
                f"{login}@acme-demo.example",
                name=name,
                role=role,
                id=self.ident("user-"),
                added_at=founded + n * 9 * 86_400,
                is_default=n == 0,
                api_key_last_used_at=START + (20 + n) * 86_400 + self.rng.randrange(86_400),
            )
        first = self.users["priya"]
        self.log("login.succeeded", founded + 300, api.session_actor(first))
        for n, (project_id, name) in enumerate(PROJECTS.items()):
            created = founded + 3_600 + n * 15 * 86_400
            api.add_project(name, id=project_id, created_at=created, residency="GLOBAL")
            owner = self.users[_MEMBERS[name][0][0]]
            self.log(
                "project.created", created, api.session_actor(owner), project_id, id=project_id, data={"name": name}
            )
            self.members(project_id, name, created)
        self.invites(founded)
        # A key leaked into a notebook and was deleted the same day: only the audit log still shows it.
        leaked = START + 33 * 86_400 + 14 * 3_600
        analytics = next(p for p, name in PROJECTS.items() if name == "analytics")
        key = self.ident("key_", 16)
        self.log("api_key.created", leaked - 7_200, api.session_actor(self.users["mei"]), analytics, id=key)
        self.log("api_key.deleted", leaked, api.session_actor(self.users["priya"]), analytics, id=key)
        self.log("login.failed", leaked + 600, api.session_actor(self.users["tomas"], "198.51.100.23"))

    def members(self, project_id: str, name: str, created: int) -> None:
        api = self.api
        owner = self.users[_MEMBERS[name][0][0]]
        for n, (login, role) in enumerate(_MEMBERS[name]):
            user = self.users[login]
            added = max(created, user["added_at"]) + n * 3_600
            api.add_project_user(project_id, user["id"], role=role, added_at=added)
            self.log("user.added", added, api.session_actor(owner), project_id, id=user["id"], data={"role": role})
            key = self.key(project_id, f"{login}-laptop", added + 600, user_id=user["id"])
            self.log("api_key.created", added + 600, api.session_actor(user), project_id, id=key["id"])
        for account_name in _SERVICE_ACCOUNTS[name]:
            at = created + 2 * 86_400
            account = api.add_project_service_account(
                project_id, account_name, id=self.ident("svc_acct_"), created_at=at
            )
            self.log("service_account.created", at, api.session_actor(owner), project_id, id=account["id"])
            self.key(project_id, f"{account_name}-prod", at + 60, service_account_id=account["id"])
        for model, requests, tokens, batch in _RATE_LIMITS[name]:
            extra = {"batch_1_day_max_input_tokens": batch} if batch else {}
            limit = api.add_project_rate_limit(
                project_id, model, requests_per_minute=requests, tokens_per_minute=tokens, id=f"rl-{model}", **extra
            )
            at = created + 86_400 + self.rng.randrange(3_600)
            changes = {"max_requests_per_1_minute": requests, "max_tokens_per_1_minute": tokens}
            self.log(
                "rate_limit.updated",
                at,
                api.session_actor(owner),
                project_id,
                id=limit["id"],
                changes_requested=changes,
            )

    def key(self, project_id: str, name: str, created: int, **owner: str) -> dict[str, Any]:
        """A project API key; about one in four has never been used."""
        unused = self.rng.random() < 0.25
        last = None if unused else START + self.rng.randrange(30, 45) * 86_400 + self.rng.randrange(86_400)
        secret = self.ident("", 6).lower()
        return self.api.add_project_api_key(
            project_id,
            name,
            id=self.ident("key_", 16),
            created_at=created,
            last_used_at=last,
            redacted_value=f"sk-proj-{secret[:3]}...{secret[3:]}",
            **owner,
        )

    def invites(self, founded: int) -> None:
        api = self.api
        owner = self.users["priya"]
        support = next(p for p, name in PROJECTS.items() if name == "support-bot")
        for email, role, status, sent, projects in (
            ("jonas@acme-demo.example", "reader", "accepted", founded + 26 * 86_400, ()),
            ("sam@contractor.example", "reader", "expired", START + 2 * 86_400, ({"id": support, "role": "member"},)),
            ("ana@acme-demo.example", "reader", "pending", START + 41 * 86_400, ({"id": support, "role": "member"},)),
        ):
            invite = api.add_invite(
                email,
                role=role,
                status=status,
                projects=projects,
                id=self.ident("invite-"),
                created_at=sent,
            )
            self.log(
                "invite.sent", sent, api.session_actor(owner), id=invite["id"], data={"email": email, "role": role}
            )
            if status == "accepted":
                self.log("invite.accepted", sent + 5_400, api.session_actor(self.users["jonas"]), id=invite["id"])


# Per project name: what it calls each day, as (model, requests a day, input and output tokens a request), with
# the fine-tuned models of the demo's jobs named by their job's suffix and base model.
_DAILY_USE = {
    "support-bot": (("ft:triage@gpt-4o-mini-2024-07-18", 1_800, 900, 12), ("gpt-4o-mini-2024-07-18", 400, 1_500, 350)),
    "analytics": (("ft:sql-writer@gpt-4o-2024-08-06", 260, 2_400, 180), ("gpt-4.1-nano-2025-04-14", 900, 700, 90)),
    "comms": (("ft:tone@gpt-4o-mini-2024-07-18", 520, 650, 420),),
}
# Embeddings a day, per project: (model, requests, input tokens a request).
_DAILY_EMBEDDINGS = {"analytics": ("text-embedding-3-small", 1_200, 400)}
# US dollars per million input and output tokens. Sample prices for the demo, not OpenAI's price list.
_PRICES = {
    "gpt-4o-mini-2024-07-18": (0.15, 0.60),
    "gpt-4o-2024-08-06": (2.50, 10.00),
    "gpt-4.1-nano-2025-04-14": (0.10, 0.40),
    "text-embedding-3-small": (0.02, 0.0),
}
_SPENDING_DAYS = 60


class _Spending:
    """Sixty days of use and cost up to today, per project, key and model: what the costs and usage tables read.

    Days count back from the fake's clock when the demo starts, so that ``start_time >= unixepoch('now', '-30
    days')`` finds them; the numbers come from a generator of their own and are the same on every day the demo
    runs. Each day's costs are what its usage cost at ``_PRICES`` (fine-tuned models at twice their base price).
    """

    def __init__(self, api: FakeOpenAI) -> None:
        self.api = api
        self.rng = random.Random(f"{ORGANIZATION_SLUG}-spending")

    def build(self) -> None:
        api = self.api
        today = int(api.clock()) // 86_400 * 86_400
        organization = api.state.organization
        models = {
            f"ft:{job['user_provided_suffix']}@{job['model']}": job["fine_tuned_model"]
            for job in api.state.jobs.values()
            if job["status"] == "succeeded"
        }
        for day in range(_SPENDING_DAYS, 0, -1):
            midnight = today - day * 86_400
            weekday = (midnight // 86_400 + 3) % 7 < 5  # 1970-01-01 was a Thursday
            for project_id, name in PROJECTS.items():
                used = organization.project_api_keys.get(project_id, [])
                keys = [k for k in used if k["last_used_at"] is not None] or [None]  # None: no keys in the demo
                for alias, requests, tokens_in, tokens_out in _DAILY_USE[name]:
                    model = models.get(alias, alias)
                    base = alias.rpartition("@")[2]
                    price_in, price_out = (p * (2 if model.startswith("ft:") else 1) for p in _PRICES[base])
                    scale = (1.0 if weekday else 0.35) * self.rng.uniform(0.8, 1.2)
                    for key in keys:
                        share = scale / len(keys)
                        calls = max(1, round(requests * share))
                        used_in, used_out = calls * tokens_in, calls * tokens_out
                        at = midnight + self.rng.randrange(8 * 3_600, 20 * 3_600)
                        key_id = owner = None
                        if key is not None:
                            key["last_used_at"] = max(key["last_used_at"], at)
                            key_id, owner = key["id"], key["owner"].get("user", {}).get("id")
                        api.add_usage(
                            "completions",
                            at,
                            input_tokens=used_in,
                            output_tokens=used_out,
                            input_cached_tokens=used_in // 4,
                            num_model_requests=calls,
                            project_id=project_id,
                            user_id=owner,
                            api_key_id=key_id,
                            model=model,
                            batch=False,
                            service_tier="default",
                        )
                        for part, count, price in (("input", used_in, price_in), ("output", used_out, price_out)):
                            api.add_cost(
                                at,
                                round(count * price / 1e6, 6),
                                project_id=project_id,
                                line_item=f"{model}, {part}",
                                api_key_id=key_id,
                                quantity=count,
                                quantity_unit="tokens",
                            )
                embedding = _DAILY_EMBEDDINGS.get(name)
                if embedding is not None:
                    model, requests, tokens = embedding
                    calls = round(requests * self.rng.uniform(0.7, 1.3))
                    at = midnight + self.rng.randrange(0, 6 * 3_600)  # the nightly job
                    api.add_usage(
                        "embeddings",
                        at,
                        input_tokens=calls * tokens,
                        num_model_requests=calls,
                        project_id=project_id,
                        model=model,
                    )
                    api.add_cost(
                        at,
                        round(calls * tokens * _PRICES[model][0] / 1e6, 6),
                        project_id=project_id,
                        line_item=f"{model}, input",
                        quantity=calls * tokens,
                        quantity_unit="tokens",
                    )


def _losses(spec: _Job, epochs: float) -> tuple[float, float]:
    """The smooth training loss after ``epochs`` (fractional) epochs, and the gap of validation loss above it."""
    train = spec.floor + (spec.start_loss - spec.floor) * math.exp(-spec.rate * epochs)
    return train, 0.04 + 0.012 * epochs + 0.045 * max(0.0, epochs - spec.best_epoch) ** 1.5


def _curve(
    spec: _Job, job_id: str, steps_per_epoch: int, saved: list[tuple[dict[str, float], str]]
) -> list[dict[str, float | None]]:
    """The lines of a job's result file: every step's training loss and accuracy (noisy, one batch each),
    validation metrics every ``_VALID_EVERY`` steps, and at each checkpoint's step exactly its metrics.

    Its own generator, seeded by the job id, so that the rest of the demo's ids and numbers stay as they are.
    """
    rng = random.Random(job_id)
    at_checkpoint = {epoch * steps_per_epoch: metrics for epoch, (metrics, _) in enumerate(saved, start=1)}
    lines: list[dict[str, float | None]] = []
    for step in range(1, len(saved) * steps_per_epoch + 1):
        smooth, gap = _losses(spec, step / steps_per_epoch)
        train = max(0.01, smooth + rng.gauss(0, 0.06))
        line: dict[str, float | None] = {
            "step": step,
            "train_loss": round(train, 4),
            "train_accuracy": round(min(0.99, 1.02 - 0.42 * train), 4),
            "valid_loss": None,
            "valid_mean_token_accuracy": None,
        }
        if step % _VALID_EVERY == 0:
            valid = smooth + gap + rng.uniform(-0.03, 0.03)
            line["valid_loss"] = round(valid, 4)
            line["valid_mean_token_accuracy"] = round(min(0.99, 1.0 - 0.41 * valid), 4)
        checkpoint = at_checkpoint.get(step)
        if checkpoint is not None:
            line.update(
                train_loss=checkpoint["train_loss"],
                train_accuracy=checkpoint["train_mean_token_accuracy"],
                valid_loss=checkpoint["valid_loss"],
                valid_mean_token_accuracy=checkpoint["valid_mean_token_accuracy"],
                full_valid_loss=checkpoint["full_valid_loss"],
                full_valid_mean_token_accuracy=checkpoint["full_valid_mean_token_accuracy"],
            )
        lines.append(line)
    return lines
