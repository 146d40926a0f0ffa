"""How the CLI speaks: one-line errors, escaped output, the process-wide switches."""

import sys
from dataclasses import dataclass
from typing import NoReturn

import typer

from rawtap.consumer.cli._terminal import printable
from rawtap.shared import (
    scrub_text,
)


@dataclass
class Switches:
    """Process-wide switches the root options set (one CLI run per process)."""

    debug: bool = False


SWITCHES = Switches()


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"rawtap: error: {one_line(scrub_text(message))}", err=True)
    sys.exit(code)


def one_line(text: str) -> str:
    return printable(" ".join(text.split()))


def say(text: str, *, err: bool = False) -> None:
    """Print human-readable output, escaping control characters stored strings may hold."""
    typer.echo(printable(text, keep_newlines=True), err=err)


def exit_with(message: str, code: int) -> NoReturn:
    # Outside the typer app a typer.Exit would escape as a traceback: exit directly.
    typer.echo(f"rawtap: error: {one_line(scrub_text(message))}", err=True)
    sys.exit(code)
