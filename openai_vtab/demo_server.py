"""``openai-vtab --demo-server``: the demo organization served by the fake API until Ctrl-C or SIGTERM, for
whatever reads its settings from the environment (the Python examples, ``openai_vtab.register``, the sqlite3
loader, the official SDK).

It prints the settings as shell lines to ``eval`` or source (on stdout, nothing else goes there)::

    unset OPENAI_ADMIN_KEY OPENAI_ORG_ID OPENAI_PROJECT_ID
    export OPENAI_BASE_URL=http://127.0.0.1:PORT/v1
    export OPENAI_API_KEY=sk-test-...
"""

from __future__ import annotations

import shlex
import signal
import threading
from types import FrameType
from typing import TextIO

from .demo import populate
from .testing import FakeOpenAI

__all__ = ["serve"]

# An obvious fake: the demo checks the key as the real API does, and this is the one it takes.
DEMO_KEY = "sk-test-demo-0000000000000000"
# Settings meant for the real API that would otherwise be sent along (an admin key would even be preferred).
UNSET = ("OPENAI_ADMIN_KEY", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID")


def serve(port: int, stdout: TextIO, stderr: TextIO) -> int:
    """Serve the demo organization on 127.0.0.1:``port`` (0: any free port) until SIGINT or SIGTERM.

    Returns the exit status: 0 when stopped by a signal.
    """
    try:
        api = FakeOpenAI(api_key=DEMO_KEY).start(port=port)
    except OSError as error:
        raise OSError(
            f"--demo-server cannot listen on 127.0.0.1:{port} ({error.strerror}): choose another --port, or 0 for "
            "any free one"
        ) from None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        populate(api)
        stdout.write(
            f"unset {' '.join(UNSET)}\n"
            f"export OPENAI_BASE_URL={shlex.quote(api.base_url)}\n"
            f"export OPENAI_API_KEY={shlex.quote(DEMO_KEY)}\n"
        )
        stdout.flush()
        stderr.write(
            f"openai-vtab: serving the demo organization ({len(api.state.jobs)} fine-tuning jobs) on {api.base_url}; "
            "Ctrl-C stops\n"
        )
        stderr.flush()
        # A timed wait, so that the signal handler gets to run between waits.
        while not stop.wait(0.5):
            pass
    finally:
        api.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
