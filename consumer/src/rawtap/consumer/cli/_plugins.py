"""Commands other distributions add to ``rawtap`` through the ``rawtap.commands`` entry point.

rawtap-tools adds ``demo`` and ``replay``. A worker's installation has no tools:
there ``rawtap demo`` answers in one line how to get them, and exits 2.
"""

import logging
from importlib.metadata import entry_points

import typer

from rawtap.consumer.cli._output import fail

logger = logging.getLogger("rawtap.cli")

GROUP = "rawtap.commands"
# Commands a tools distribution provides, and where to get them.
TOOL_COMMANDS = ("demo", "replay")
_INSTALL_HINT = (
    "`rawtap {name}` comes with rawtap-tools, which is not installed: "
    "pip install rawtap-tools (from a clone: pip install ./shared ./producer ./consumer ./tools)"
)
_loaded: set[int] = set()


def load_commands(app: typer.Typer) -> None:
    """Register every installed distribution's commands on ``app``, once per app."""
    if id(app) in _loaded:
        return
    _loaded.add(id(app))
    for entry in entry_points(group=GROUP):
        entry.load()(app)
    have = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    for name in TOOL_COMMANDS:
        if name not in have:
            _missing(app, name)


def _missing(app: typer.Typer, name: str) -> None:
    def command() -> None:
        fail(_INSTALL_HINT.format(name=name), 2)

    app.command(
        name,
        help=f"Needs rawtap-tools (not installed): {name}.",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )(command)
