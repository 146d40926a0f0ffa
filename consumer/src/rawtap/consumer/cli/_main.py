"""The ``rawtap`` entry point: run the app, turning every error into one line."""

import sys

import redis
import typer

# typer vendors click (typer._click): its exceptions are what the parser raises.
from typer._click import exceptions as click_errors

from rawtap.consumer.cli import (  # noqa: F401 - each registers its commands on the app
    _cmd_console,
    _cmd_dead_letters,
    _cmd_records,
    _cmd_stats,
    _cmd_worker,
)
from rawtap.consumer.cli._app import app
from rawtap.consumer.cli._output import SWITCHES, exit_with
from rawtap.consumer.cli._plugins import load_commands
from rawtap.consumer.worker import (
    describe,
)
from rawtap.shared import (
    ConfigError,
    RawtapError,
)


def main() -> None:  # noqa: C901 - one except clause per kind of error, each one line
    """Entry point of the ``rawtap`` script: run the app, turning errors into one line."""
    try:
        load_commands(app)
        code = app(standalone_mode=False)
    except click_errors.NoArgsIsHelpError as e:
        typer.echo(e.ctx.get_help() if e.ctx else e.format_message(), err=True)
        sys.exit(2)
    except click_errors.UsageError as e:
        where = f" (see `{e.ctx.command_path} --help`)" if e.ctx else ""
        exit_with(e.format_message() + where, e.exit_code)
    except typer.Abort:
        exit_with("interrupted", 130)
    except click_errors.ClickException as e:
        exit_with(e.format_message(), e.exit_code)
    except ConfigError as e:
        if SWITCHES.debug:
            raise
        exit_with(str(e), 2)
    except RawtapError as e:
        if SWITCHES.debug:
            raise
        exit_with(str(e), 1)
    except redis.RedisError as e:
        if SWITCHES.debug:
            raise
        exit_with(describe(e, "the configured URL"), 1)
    except OSError as e:
        if SWITCHES.debug:
            raise
        exit_with(f"{e.strerror or e} ({e.filename or 'I/O'})", 1)
    except Exception as e:  # the last resort: every error stays one line
        if SWITCHES.debug:
            raise
        exit_with(f"unexpected {type(e).__name__}: {e} (rawtap --debug ... shows the traceback)", 1)
    if isinstance(code, int) and code:
        sys.exit(code)
