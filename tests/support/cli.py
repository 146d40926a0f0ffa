"""Running the ``rawtap`` CLI in-process and capturing what it prints."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest

from rawtap.consumer.cli import main


@dataclass
class CliResult:
    """Exit code, stdout bytes and stderr text of one CLI run."""

    code: int
    out: bytes
    err: str


def run_cli(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> CliResult:
    """Run ``rawtap *args`` in this process (as the console script does)."""
    capsysbinary.readouterr()
    old_argv = sys.argv
    sys.argv = ["rawtap", *args]
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = old_argv
    captured = capsysbinary.readouterr()
    return CliResult(code, captured.out, captured.err.decode("utf-8", errors="replace"))
