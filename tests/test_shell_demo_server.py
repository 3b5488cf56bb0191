"""``openai-vtab --demo-server``, end to end: started as a subprocess, its printed settings used by
``openai_vtab.register`` and by an example that reads the environment, then stopped by a signal."""

from __future__ import annotations

import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest
from shell_helpers import SCRIPT, environment, in_a_scratch_directory, run  # noqa: F401 - an autouse fixture

import openai_vtab
from openai_vtab.demo import populate
from openai_vtab.testing import FakeOpenAI

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def sample() -> FakeOpenAI:
    """The demo's sample organization, for expectations (never started: its data is all that is read)."""
    api = FakeOpenAI()
    populate(api)
    return api


class DemoServer:
    """``openai-vtab --demo-server`` running, with the settings it printed."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [str(SCRIPT), "--demo-server", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(None, OPENAI_ADMIN_KEY="sk-admin-real-never-sent"),
        )
        assert self.process.stdout is not None
        self.lines = [self.process.stdout.readline() for _ in range(3)]
        self.settings = {}
        for line in self.lines:
            command, *words = shlex.split(line)
            if command == "export":
                name, _, value = words[0].partition("=")
                self.settings[name] = value
        self.unset = next(shlex.split(line)[1:] for line in self.lines if line.startswith("unset "))

    def stop(self, signum: int) -> tuple[int, str, str]:
        """Send ``signum``; the exit status and what the server wrote."""
        self.process.send_signal(signum)
        out, err = self.process.communicate(timeout=10)
        return self.process.returncode, "".join(self.lines) + out, err


@pytest.fixture
def server() -> Iterator[DemoServer]:
    started = DemoServer()
    yield started
    if started.process.poll() is None:
        started.process.kill()
        started.process.communicate()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_demo_server_prints_settings_that_register_uses_then_stops_on_a_signal(
    server: DemoServer, sample: FakeOpenAI, signum: int
) -> None:
    assert set(server.settings) == {"OPENAI_BASE_URL", "OPENAI_API_KEY"}
    assert server.settings["OPENAI_BASE_URL"].startswith("http://127.0.0.1:")
    assert server.settings["OPENAI_API_KEY"].startswith("sk-test-")
    assert "OPENAI_ADMIN_KEY" in server.unset  # a real admin key would be sent to the demo and refused
    db = apsw.Connection(":memory:")
    openai_vtab.register(db, api_key=server.settings["OPENAI_API_KEY"], base_url=server.settings["OPENAI_BASE_URL"])
    assert db.execute("SELECT count(*) FROM fine_tuning_jobs").get == len(sample.state.jobs)
    status, out, err = server.stop(signum)
    assert status == 0
    assert out == "".join(server.lines)  # nothing but the settings on stdout
    assert "Ctrl-C stops" in err and "sk-admin" not in out + err


def test_an_example_that_reads_the_environment_runs_against_the_sourced_settings(
    server: DemoServer, sample: FakeOpenAI, tmp_path: Path
) -> None:
    (tmp_path / "demo.env").write_text("".join(server.lines))
    example = EXAMPLES / "pick_checkpoints.py"
    result = subprocess.run(
        ["sh", "-c", f". ./demo.env && exec {shlex.quote(sys.executable)} {shlex.quote(str(example))}"],
        capture_output=True,
        text=True,
        env=environment(None, OPENAI_ADMIN_KEY="sk-admin-real-never-sent", OPENAI_ORG_ID="org-real"),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    succeeded = [job["id"] for job in sample.state.jobs.values() if job["status"] == "succeeded"]
    assert sorted(line.split()[0] for line in result.stdout.splitlines()) == sorted(succeeded)
    assert server.stop(signal.SIGTERM)[0] == 0


def test_demo_server_listens_on_the_port_asked_for() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = DemoServer("--port", str(port))
    try:
        assert server.settings["OPENAI_BASE_URL"] == f"http://127.0.0.1:{port}/v1"
        # A second one on the same port says so, and what to do.
        busy = run(["--demo-server", "--port", str(port)], None)
        assert (busy.returncode, busy.stdout) == (1, "")
        assert busy.stderr == (
            f"Error: --demo-server cannot listen on 127.0.0.1:{port} (Address already in use): choose another "
            "--port, or 0 for any free one\n"
        )
    finally:
        assert server.stop(signal.SIGTERM)[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--demo-server", "x.db"], "--demo-server takes no other option than --port, and no database or SQL"),
        (["--demo-server", "--demo"], "--demo-server takes no other option than --port, and no database or SQL"),
        (["--port", "8080", ":memory:", "SELECT 1"], "--port is the port of --demo-server, which serves the demo"),
        (["--demo-server", "--port", "http"], "--port takes a port number (0 to 65535; 0: any free port), not 'http'"),
    ],
)
def test_demo_server_options_that_make_no_sense_fail_at_once(args: list[str], message: str) -> None:
    result = run(args, None)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(f"Error: {message}")
