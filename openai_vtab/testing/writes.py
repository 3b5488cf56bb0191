"""The fake's write routes: create, cancel, pause and resume fine-tuning jobs; grant and revoke checkpoint
permissions; cancel batches; delete files. Bodies, answers and state changes follow the API's spec:

* POST /fine_tuning/jobs (model, training_file, ... ) answers the new job, ``validating_files``; the training
  and validation files must be uploaded files.
* POST /fine_tuning/jobs/{id}/cancel, /pause, /resume answer the job in its new status (``cancelled``,
  ``paused``, ``running``), or 400 when its status does not allow it (a finished job cannot be cancelled).
* POST /fine_tuning/checkpoints/{checkpoint}/permissions ``{"project_ids": [...]}`` answers the list of new
  permissions; DELETE .../permissions/{id} answers ``{"id", "object", "deleted": true}``. Admin key.
* POST /batches/{id}/cancel answers the batch, ``cancelling``; DELETE /files/{id} answers
  ``{"id", "object": "file", "deleted": true}``.

``fail_after_write`` makes a write answer an error status *after* it changed the state, as a server that made a
job and then failed to say so: what a client must never answer by sending the create again.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import FakeError

__all__ = ["WRITE_ROUTES", "WriteRoutes"]

# Route -> the method it takes. "jobs" and "permissions" are also list routes (GET).
WRITE_ROUTES = {
    "jobs": "POST",
    "job_cancel": "POST",
    "job_pause": "POST",
    "job_resume": "POST",
    "permissions": "POST",
    "permission": "DELETE",
    "batch_cancel": "POST",
    "file": "DELETE",
}
# The spec's type of each create field (CreateFineTuningJobRequest): a body that breaks it is a 400, as the API's.
_JOB_TYPES: dict[str, tuple[str, tuple[type, ...]]] = {
    "model": ("a string", (str,)),
    "training_file": ("a string", (str,)),
    "validation_file": ("a string", (str, type(None))),
    "suffix": ("a string", (str, type(None))),
    "seed": ("an integer", (int, type(None))),
    "method": ("an object", (dict,)),
    "metadata": ("an object", (dict, type(None))),
    "hyperparameters": ("an object", (dict,)),
    "integrations": ("an array", (list, type(None))),
}
_REQUIRED = {"model", "training_file"}
_JSON_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a decimal",
    bool: "a boolean",
    list: "an array",
    dict: "an object",
}
# Job action -> (statuses it applies to, the status it leads to).
_JOB_ACTIONS = {
    "job_cancel": ({"validating_files", "queued", "running", "paused"}, "cancelled"),
    "job_pause": ({"running"}, "paused"),
    "job_resume": ({"paused"}, "running"),
}
_BATCH_CANCELLABLE = {"validating", "in_progress", "finalizing"}


class WriteRoutes:
    """Mixed into FakeOpenAI: routing and answers of the write routes (see the module docstring)."""

    def fail_after_write(self, route: str, status: int = 500, *, times: int = 1) -> None:
        """Answer the next ``times`` writes to ``route`` (``jobs``, ``job_cancel``, ...) with HTTP ``status``
        after changing the state as a success would."""
        with self._lock:
            self._write_faults().extend([(route, status)] * times)

    def _write_faults(self) -> list[tuple[str, int]]:
        return self.__dict__.setdefault("_pending_write_faults", [])

    @staticmethod
    def _route_writes(segments: list[str]) -> tuple[str, tuple[str, ...]] | None:
        match segments:
            case ["v1", "fine_tuning", "jobs", job, ("cancel" | "pause" | "resume") as action]:
                return f"job_{action}", (job,)
            case ["v1", "fine_tuning", "checkpoints", checkpoint, "permissions", permission]:
                return "permission", (checkpoint, permission)
            case ["v1", "batches", batch, "cancel"]:
                return "batch_cancel", (batch,)
            case ["v1", "files", file]:
                return "file", (file,)
        return None

    def _answer_write(
        self, method: str, route: str, keys: tuple[str, ...], params: dict[str, str], payload: bytes
    ) -> dict[str, Any]:
        """Apply one write and answer it (or the programmed failure, after applying it)."""
        if route == "unknown":
            raise FakeError(404, "Invalid URL", code="unknown_url")
        if WRITE_ROUTES.get(route) != method:
            raise FakeError(405, f"Method {method} is not allowed here.")
        if params:
            raise FakeError(400, f"Unrecognized request argument supplied: {next(iter(params))}")
        try:
            body = json.loads(payload) if payload else {}
        except ValueError:
            raise FakeError(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise FakeError(400, "The body of your request must be a JSON object.")
        answer = self._create_job(body) if route == "jobs" else self._change(route, keys, body)
        with self._lock:
            faults = self._write_faults()
            fault = next((f for f in faults if f[0] == route), None)
            if fault is not None:
                faults.remove(fault)
        if fault is not None:
            raise FakeError(fault[1], "The server had an error while processing your request.", type="server_error")
        return answer

    def _create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(body) - set(_JOB_TYPES))
        if unknown:
            raise FakeError(400, f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
        for name in ("model", "training_file"):
            if body.get(name) is None:
                raise FakeError(400, f"Missing required parameter: '{name}'.", param=name)
        for name, value in body.items():
            wanted, kinds = _JOB_TYPES[name]
            if not isinstance(value, kinds) or isinstance(value, bool) or (value is None and name in _REQUIRED):
                got = "null" if value is None else _JSON_TYPE_NAMES.get(type(value), "a value")
                raise FakeError(
                    400, f"Invalid type for '{name}': expected {wanted}, but got {got} instead.", param=name
                )
        metadata = body.get("metadata") or {}
        if not all(isinstance(v, str) for v in metadata.values()):
            raise FakeError(400, "Invalid type for 'metadata': its values must be strings.", param="metadata")
        uploaded = {f["id"] for f in self.state.files}
        for name in ("training_file", "validation_file"):
            if body.get(name) is not None and body[name] not in uploaded:
                raise FakeError(400, f"Invalid file ID: {body[name]}", param=name, code=f"invalid_{name}")
        suffix = body.pop("suffix", None)
        fields = {k: v for k, v in body.items() if v is not None}
        return self.add_job(
            status="validating_files",
            finished_at=None,
            trained_tokens=None,
            user_provided_suffix=suffix,
            **fields,
        )

    def _change(self, route: str, keys: tuple[str, ...], body: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        with self._lock:
            if route in _JOB_ACTIONS:
                job = self._job(keys[0])
                allowed, new = _JOB_ACTIONS[route]
                if job["status"] not in allowed:
                    raise FakeError(
                        400, f"Job {job['id']} has status {job['status']} and cannot be {new}.", code="invalid_status"
                    )
                job["status"] = new
                return dict(job)
            if route == "permissions":
                return self._grant(keys[0], body)
            if route == "permission":
                permissions = state.permissions.get(keys[0], [])
                for permission in permissions:
                    if permission["id"] == keys[1]:
                        permissions.remove(permission)
                        return {"id": keys[1], "object": "checkpoint.permission", "deleted": True}
                raise FakeError(404, f"No permission found with id '{keys[1]}'.", code="not_found")
            if route == "batch_cancel":
                batch = next((b for b in state.batches if b["id"] == keys[0]), None)
                if batch is None:
                    raise FakeError(404, f"No batch found with id '{keys[0]}'.", param="batch_id")
                if batch["status"] not in _BATCH_CANCELLABLE:
                    raise FakeError(400, f"Cannot cancel a batch with status '{batch['status']}'.")
                batch.update(status="cancelling", cancelling_at=self._clock)
                return dict(batch)
            file = next((f for f in state.files if f["id"] == keys[0]), None)
            if file is None:
                raise FakeError(404, f"No such File object: {keys[0]}", param="id")
            state.files.remove(file)
            state.contents.pop(keys[0], None)
            return {"id": keys[0], "object": "file", "deleted": True}

    def _grant(self, checkpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """Share a checkpoint with projects; called with the lock held."""
        if set(body) != {"project_ids"}:  # the spec forbids other properties
            raise FakeError(400, "The body must be exactly {'project_ids': [...]}.", param="project_ids")
        projects = body["project_ids"]
        if not isinstance(projects, list) or not projects or not all(isinstance(p, str) for p in projects):
            raise FakeError(400, "project_ids must be a non-empty list of project ids.", param="project_ids")
        known = {
            c["fine_tuned_model_checkpoint"] for checkpoints in self.state.checkpoints.values() for c in checkpoints
        }
        if checkpoint not in known:
            raise FakeError(404, f"Checkpoint {checkpoint} not found.", code="not_found")
        granted = []
        for project_id in projects:
            self._clock += 60
            permission = {
                "id": self._id("cp_"),
                "object": "checkpoint.permission",
                "created_at": self._clock,
                "project_id": project_id,
            }
            self.state.permissions.setdefault(checkpoint, []).append(permission)
            granted.append(permission)
        return {
            "object": "list",
            "data": granted,
            "first_id": granted[0]["id"],
            "last_id": granted[-1]["id"],
            "has_more": False,
        }
