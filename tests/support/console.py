"""Running ``rawtap console`` as a real process, and the system Chromium for browser tests."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from tests.support.pipeline import PROCESS_EXIT_S, rawtap_command

CHROMIUM = os.environ.get("RAWTAP_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_HOW_TO = (
    "install Debian's Chromium with `apt-get install -y chromium` (.ci/run does) "
    "or set RAWTAP_TEST_CHROMIUM to a Chromium binary"
)
CHROMIUM_ARGS = [
    # As root in a container, without a display; and no background traffic, which this
    # machine's closed network refuses (see the env notes of the workplace).
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_URL = re.compile(r"rawtap console: (http://\S+/) ")


def _install_chromium() -> str:
    """Install Debian's Chromium when this is a Debian machine run as root; what apt said."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None or "RAWTAP_TEST_CHROMIUM" in os.environ:
        return "not installed: not root on a Debian machine"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    done = subprocess.run(install, check=False, capture_output=True, text=True, env=env)
    if done.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True, env=env)
        done = subprocess.run(install, check=False, capture_output=True, text=True, env=env)
    return f"apt-get exited {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}"


def chromium_path() -> str:
    """The Chromium binary the browser tests drive.

    The README's test command sets up everything the suite needs: on a Debian
    machine run as root, Debian's Chromium is installed here when it is missing
    (once per run; .ci/run installs it beforehand). Otherwise the test fails
    with how to install it.
    """
    if not os.access(CHROMIUM, os.X_OK):
        said = _install_chromium()
        if not os.access(CHROMIUM, os.X_OK):
            pytest.fail(f"no Chromium at {CHROMIUM} ({said}): {CHROMIUM_HOW_TO}")
    return CHROMIUM


@dataclass
class Console:
    """A running console: its base URL and process."""

    url: str
    process: subprocess.Popen[str]


@contextmanager
def running_console(
    sink_url: str, *args: str, env: dict[str, str] | None = None
) -> Iterator[Console]:
    """``rawtap console --sink sink_url --port 0 …`` until the block ends (then SIGTERM)."""
    process = subprocess.Popen(
        rawtap_command("console", "--sink", sink_url, "--port", "0", *args),
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the console prints its URL once it listens
        match = _URL.search(line)
        if match is None:
            process.kill()
            _, err = process.communicate(timeout=PROCESS_EXIT_S)
            raise AssertionError(f"console did not start: {line!r} {err!r}")
        yield Console(match.group(1), process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=PROCESS_EXIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
