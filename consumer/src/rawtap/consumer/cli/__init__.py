"""The ``rawtap`` command line, one module per command group.

Every failure is one line on stderr (``rawtap: error: …``) and a non-zero
exit: 1 for a runtime failure (Redis down, sink unusable), 2 for bad usage or
settings (usage errors included: click runs without its boxes and multi-line
messages). Tracebacks are only shown with ``--debug``. Stored strings are
printed through :func:`printable`, so no control character reaches the terminal.

``_app`` holds the typer application; ``_options`` the options several
commands share; ``_output`` how errors and results are printed; the
``_cmd_*`` modules register the commands; ``_main`` is the entry point.
"""

from rawtap.consumer.cli._main import main

# What a distribution adding commands through the ``rawtap.commands`` entry point
# (rawtap-tools: ``demo``, ``replay``) builds them with.
from rawtap.consumer.cli._options import (
    ALL_RECORDS,
    ANY_RECORD,
    EndStateOpt,
    Model,
    Provider,
    RedisUrl,
    Session,
    Since,
    SinkUrl,
    Status,
    Until,
    choice,
    open_store,
    query_from,
    record_filters,
)
from rawtap.consumer.cli._output import fail, say

__all__ = [
    "ALL_RECORDS",
    "ANY_RECORD",
    "EndStateOpt",
    "Model",
    "Provider",
    "RedisUrl",
    "Session",
    "Since",
    "SinkUrl",
    "Status",
    "Until",
    "choice",
    "fail",
    "main",
    "open_store",
    "query_from",
    "record_filters",
    "say",
]
