"""``rawtap dead-letters list|show|requeue``."""

from typing import Annotated, Any

import typer

from rawtap.consumer.cli._app import app
from rawtap.consumer.cli._options import Prefix, RedisUrl
from rawtap.consumer.cli._output import fail, say
from rawtap.consumer.worker import (
    connect,
    get_dead_letter,
    list_dead_letters,
    requeue,
)
from rawtap.shared import (
    StreamNames,
    WorkerSettings,
    load_settings,
)

dead_letters_app = typer.Typer(
    help="Inspect and requeue dead letters.", no_args_is_help=True, rich_markup_mode=None
)


app.add_typer(dead_letters_app, name="dead-letters")


def _dead_letter_client(redis_url: str | None, stream_prefix: str | None) -> tuple[Any, str]:
    settings = load_settings(WorkerSettings, redis_url=redis_url, stream_prefix=stream_prefix)
    return connect(settings, name="rawtap-cli"), StreamNames(settings.stream_prefix).dead_letters


@dead_letters_app.command("list")
def dead_letters_list(
    redis_url: RedisUrl = None,
    stream_prefix: Prefix = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, show_default=True, help="How many to show.")
    ] = 50,
) -> None:
    """List dead letters, oldest first."""
    client, stream = _dead_letter_client(redis_url, stream_prefix)
    with client:
        letters = list_dead_letters(client, stream, limit)
    if not letters:
        say(f"no dead letters in {stream}")
    for d in letters:
        say(
            f"{d.id}  from {d.origin_stream} {d.origin_id}  deliveries {d.deliveries}  "
            f"record {d.record_id or '-'}  {d.error}"
        )


@dead_letters_app.command("show")
def dead_letters_show(
    letter_id: Annotated[str, typer.Argument(help="Id in the dead-letter stream.")],
    redis_url: RedisUrl = None,
    stream_prefix: Prefix = None,
) -> None:
    """Show one dead letter with its original fields."""
    client, stream = _dead_letter_client(redis_url, stream_prefix)
    with client:
        letter = get_dead_letter(client, stream, letter_id)
    if letter is None:
        fail(f"no dead letter {letter_id} in {stream}")
    say(
        f"id {letter.id}\norigin {letter.origin_stream} {letter.origin_id}\n"
        f"deliveries {letter.deliveries}\nerror {letter.error}"
    )
    for name, value in letter.fields.items():
        preview = value[:200].decode("utf-8", "backslashreplace")
        say(
            f"field {name.decode('utf-8', 'backslashreplace')} ({len(value)} bytes): "
            f"{preview}{'...' if len(value) > 200 else ''}"
        )


@dead_letters_app.command("requeue")
def dead_letters_requeue(
    letter_ids: Annotated[list[str] | None, typer.Argument(help="Ids to requeue.")] = None,
    requeue_all: Annotated[
        bool, typer.Option("--all", show_default="off", help="Requeue every dead letter.")
    ] = False,
    redis_url: RedisUrl = None,
    stream_prefix: Prefix = None,
) -> None:
    """Put dead letters back on their stream (after fixing what made them fail)."""
    if not letter_ids and not requeue_all:
        fail("name dead letter ids or pass --all", 2)
    client, stream = _dead_letter_client(redis_url, stream_prefix)
    with client:
        if requeue_all:
            letters = list_dead_letters(client, stream, 1_000_000)
        else:
            found = [get_dead_letter(client, stream, i) for i in letter_ids or []]
            missing = [i for i, d in zip(letter_ids or [], found, strict=True) if d is None]
            if missing:
                fail(f"no dead letter {', '.join(missing)} in {stream}")
            letters = [d for d in found if d is not None]
        moved = requeue(client, stream, letters)
    typer.echo(f"requeued {moved} dead letters")
