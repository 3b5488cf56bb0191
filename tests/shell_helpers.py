"""What the shell's tests share: the console script run as a subprocess (or on a pseudo-terminal) with the
environment of a fake API on 127.0.0.1, and the stock sqlite3 CLI to compare with.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from openai_vtab.testing import FakeOpenAI

SCRIPT = Path(sys.executable).with_name("openai-vtab")
STOCK_SQLITE3 = shutil.which("sqlite3")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


@pytest.fixture(autouse=True)
def in_a_scratch_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files a command creates (a database named by mistake, readline history) land in tmp_path."""
    monkeypatch.chdir(tmp_path)


def environment(api: FakeOpenAI | None, **extra: str) -> dict[str, str]:
    """This process's environment without OPENAI_* or NO_COLOR; the fake's key and URL when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_") and k != "NO_COLOR"}
    env["PATH"] = f"{SCRIPT.parent}{os.pathsep}{env.get('PATH', '')}"
    if api is not None:
        env.update(OPENAI_API_KEY=api.api_key, OPENAI_BASE_URL=api.base_url)
    env.update(extra)
    return env


def run(
    args: Sequence[str], api: FakeOpenAI | None, *, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The console script with ``args``; stdin is always a pipe (never the terminal pytest runs in)."""
    return subprocess.run(
        [str(SCRIPT), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment(api) if env is None else env,
        timeout=60,
    )


def job_with_checkpoints(api: FakeOpenAI, count: int, **fields: object) -> str:
    """A new job of the fake with ``count`` checkpoints; its id."""
    job = api.add_job(**fields)
    api.add_checkpoints(job["id"], count)
    return job["id"]


class Terminal:
    """The console script on a pseudo-terminal ``columns`` wide (its controlling terminal, so Ctrl-C is a real
    SIGINT)."""

    def __init__(self, args: Sequence[str], env: dict[str, str], columns: int = 160) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the program, or die trying
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
                os.execve(SCRIPT, [str(SCRIPT), *args], env)
            finally:
                os._exit(127)
        self.raw = ""

    def expect(self, text: str, timeout: float = 10.0) -> str:
        """Read until ``text`` appears; everything read, without colours and carriage returns."""
        start, deadline = len(self.raw), time.monotonic() + timeout
        while text not in ANSI.sub("", self.raw[start:]):
            if time.monotonic() > deadline or not self._read(deadline - time.monotonic()):
                raise AssertionError(f"{text!r} did not appear; the terminal showed:\n{self.raw[start:]}")
        return ANSI.sub("", self.raw[start:])

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait(self, timeout: float) -> int:
        """The exit status, reading what is left; fails if the program takes longer than ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.pid = 0
                return os.waitstatus_to_exitcode(status)
            self._read(0.05)
        raise AssertionError(f"the shell did not exit within {timeout} s")

    def close(self) -> None:
        """Kill the program if it still runs."""
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)

    def _read(self, timeout: float) -> bool:
        if not select.select([self.fd], [], [], max(0.0, timeout))[0]:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the program has exited
            return False
        self.raw += data.decode(errors="replace")
        return bool(data)


def terminal_environment(api: FakeOpenAI | None, home: Path) -> dict[str, str]:
    """The environment of a session on a terminal, which keeps its readline history in ``home``."""
    # HOME: readline keeps the session's history there.
    return environment(api, TERM="dumb", HOME=str(home))
