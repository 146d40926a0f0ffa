"""The typer application every command module registers on, and its root options."""

from typing import Annotated

import typer

from rawtap.consumer.cli._output import SWITCHES

app = typer.Typer(
    name="rawtap",
    help="Record every byte LLM providers send back: workers, inspection and a demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain click output: one-line errors (see main) and help without boxes or <bool>.
    rich_markup_mode=None,
)


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks on errors.", show_default="off")
    ] = False,
) -> None:
    SWITCHES.debug = debug
