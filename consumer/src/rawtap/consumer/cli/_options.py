"""Options shared by several commands: settings overrides, record filters, the store."""

import contextlib
import functools
import inspect
import sys
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer

from rawtap.consumer.read import (
    parse_time,
)
from rawtap.consumer.store import (
    RecordQuery,
    Store,
    open_sink,
)
from rawtap.shared import (
    ConfigError,
    EndState,
    WorkerSettings,
    load_settings,
)


def shown(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def setting(*decls: str, field: str, help: str, **kw: Any) -> Any:
    """An option overriding a WorkerSettings field: help shows its default and variable."""
    info = WorkerSettings.model_fields[field]
    default = "hostname-pid" if info.default_factory is not None else info.default
    return typer.Option(
        *decls, help=f"{help} [env: RAWTAP_{field.upper()}]", show_default=shown(default), **kw
    )


def choice(*values: str) -> Callable[[str | None], str | None]:
    """A parser-time check of a choice option (any case): one line listing the allowed values."""

    def check(value: str | None) -> str | None:
        if value is None or value.lower() in values:
            return None if value is None else value.lower()
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(values)}")

    return check


RedisUrl = Annotated[str | None, setting("--redis-url", field="redis_url", help="Redis URL.")]


Prefix = Annotated[
    str | None, setting("--stream-prefix", field="stream_prefix", help="Stream key prefix.")
]


Group = Annotated[str | None, setting("--group", field="group", help="Consumer group.")]


SinkUrl = Annotated[
    str | None,
    setting(
        "--sink", field="sink_url", help="Store URL: sqlite:///path.db or postgresql://host/db."
    ),
]


ShardCount = Annotated[
    int | None,
    setting(
        "--shard-count",
        field="shards",
        help="Shard streams producers write (rawtap:{0} ...), as they are configured.",
    ),
]


Cluster = Annotated[
    bool | None,
    setting(
        "--cluster/--no-cluster",
        field="cluster",
        help="Use the Redis Cluster client (implied by redis+cluster:// URLs).",
    ),
]


ANY_RECORD = "any"


Session = Annotated[
    str | None, typer.Option("--session", show_default=ANY_RECORD, help="Only this session id.")
]


RecordId = Annotated[
    str | None, typer.Option("--record", show_default=ANY_RECORD, help="Only this record id.")
]


Provider = Annotated[
    str | None, typer.Option("--provider", show_default=ANY_RECORD, help="Only this provider.")
]


Model = Annotated[
    str | None, typer.Option("--model", show_default=ANY_RECORD, help="Only this model (derived).")
]


Status = Annotated[
    int | None, typer.Option("--status", show_default=ANY_RECORD, help="Only this HTTP status.")
]


EndStateOpt = Annotated[
    str | None,
    typer.Option(
        "--end-state",
        callback=choice(*(e.value for e in EndState)),
        show_default=ANY_RECORD,
        help="Only this end state.",
    ),
]


Since = Annotated[
    str | None,
    typer.Option(
        "--since",
        show_default=ANY_RECORD,
        help="Started at or after: 2h, 30d (ago) or an ISO date/time.",
    ),
]


Until = Annotated[
    str | None,
    typer.Option(
        "--until",
        show_default=ANY_RECORD,
        help="Started before: 2h, 30d (ago) or an ISO date/time.",
    ),
]


ProgressOpt = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress", show_default="when stderr is a terminal", help="Progress bar."
    ),
]


def query_from(
    session: str | None,
    provider: str | None,
    model: str | None,
    status: int | None,
    end_state: str | None,
    since: str | None,
    until: str | None,
    record: str | None = None,
) -> RecordQuery:
    if end_state is not None and end_state not in {e.value for e in EndState}:
        raise ConfigError(
            f"--end-state {end_state!r}: use one of {', '.join(e.value for e in EndState)}"
        )
    return RecordQuery(
        session_id=session,
        provider=provider,
        model=model,
        status=status,
        end_state=end_state,
        since_ns=None if since is None else parse_time(since),
        until_ns=None if until is None else parse_time(until),
        record_id=record,
    )


def open_store(sink: str | None, *, read_only: bool = True) -> Store:
    # Never create or upgrade a store here: only `rawtap migrate` and workers do.
    url = load_settings(WorkerSettings, sink_url=sink).sink_url
    return open_sink(url, migrate=False, read_only=read_only)


@contextlib.contextmanager
def progress_bar(label: str, total: int, enabled: bool | None) -> Iterator[Callable[[int], None]]:
    """A progress callback: a bar on stderr when enabled (default: stderr is a terminal)."""
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show:
        yield lambda _n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        f"[bold]{label}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


ALL_RECORDS = RecordQuery()
"""The default of a ``query`` parameter :func:`record_filters` stands in for (every record)."""

_FILTERS: dict[str, Any] = {
    "session": Session,
    "provider": Provider,
    "model": Model,
    "status": Status,
    "end_state": EndStateOpt,
    "since": Since,
    "until": Until,
    "record": RecordId,
}
_FILTER_PARAMS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)
    for name, hint in _FILTERS.items()
]


def record_filters(command: Callable[..., None]) -> Callable[..., None]:
    """Replace a command's ``query: RecordQuery`` parameter by the eight filter options.

    The options appear in ``--help`` where ``query`` stands in the signature, the
    same in every command that filters records; the command is called with the
    :class:`RecordQuery` they describe.
    """
    signature = inspect.signature(command)
    params = list(signature.parameters.values())
    at = next(i for i, p in enumerate(params) if p.name == "query")
    rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params[at + 1 :]]
    shown = [*params[:at], *_FILTER_PARAMS, *rest]

    @functools.wraps(command)
    def run(*args: Any, **options: Any) -> None:
        filters = {name: options.pop(name, None) for name in _FILTERS}
        command(*args, **options, query=query_from(**filters))

    # typer reads the parameters from the signature and their types from the annotations.
    run.__signature__ = signature.replace(parameters=shown)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in shown} | {"return": None}
    return run
