"""The fake's errors: what it answers in the API's envelope ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

from typing import Any

__all__ = ["FakeError"]


class FakeError(Exception):
    """An answer of the fake in the API's error envelope, with its HTTP status."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {
            "error": {"message": message, "type": type, "param": extra.get("param"), "code": extra.get("code")}
        }
