"""Where the official OpenAPI spec lives for the tests that need it, and the skip when it is absent.

CI checks ../shared out beside the repository; elsewhere the spec may be missing, and those tests then skip
with this reason rather than fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "openapi" / "openapi.yaml"


def require_spec() -> None:
    """Skip the calling test module when the spec is not there."""
    if not SPEC_PATH.is_file():
        pytest.skip(
            f"the OpenAI OpenAPI spec is not at {SPEC_PATH} (CI checks ../shared out beside the repository)",
            allow_module_level=True,
        )
