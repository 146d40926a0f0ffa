"""``rawtap list|show|export|purge|rederive``: the stored records."""

import sys
from typing import Annotated

import typer

from rawtap.consumer.cli._app import app
from rawtap.consumer.cli._options import (
    ALL_RECORDS,
    ProgressOpt,
    SinkUrl,
    choice,
    open_store,
    progress_bar,
    record_filters,
)
from rawtap.consumer.cli._output import fail, say
from rawtap.consumer.cli._terminal import printable
from rawtap.consumer.read import (
    ExportReport,
    export_jsonl,
    export_parquet,
    format_time,
    render_show,
    resolve_record,
)
from rawtap.consumer.read import (
    rederive as run_rederive,
)
from rawtap.consumer.store import (
    RecordQuery,
    RecordSummary,
    purge_older_than,
)
from rawtap.shared import (
    ConfigError,
    parse_duration,
)


def report_unreadable(report: ExportReport) -> None:
    if report.unreadable:
        record_id, reason = report.unreadable[0]
        fail(
            f"{len(report.unreadable)} stored record(s) could not be read and were left out "
            f"(first {record_id}: {reason})"
        )


def _table(rows: list[RecordSummary]) -> str:
    header = ("ID", "STARTED (UTC)", "PROVIDER", "MODEL", "STATUS", "END", "TOKENS IN/OUT",
              "DURATION", "BYTES", "SESSION")  # fmt: skip
    body = []
    for r in rows:
        tokens = (
            "-"
            if r.input_tokens is None and r.output_tokens is None
            else f"{r.input_tokens if r.input_tokens is not None else '-'}/"
            f"{r.output_tokens if r.output_tokens is not None else '-'}"
        )
        end = r.end_state + (" stream" if r.stream else "") + (" !parse" if r.parse_error else "")
        cells = (
            r.record_id,
            format_time(r.started_at_ns),
            r.provider,
            r.model or "-",
            "-" if r.status is None else str(r.status),
            end,
            tokens,
            "-" if r.ended_ns is None else f"{r.ended_ns / 1e6:,.0f} ms",
            f"{r.body_size:,}",
            r.session_id or "-",
        )
        body.append(tuple(printable(c) for c in cells))
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body, strict=True)]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in (header, *body)
    )


@app.command("list")
@record_filters
def list_(
    sink: SinkUrl = None,
    query: RecordQuery = ALL_RECORDS,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, show_default=True, help="At most this many.")
    ] = 50,
    oldest_first: Annotated[
        bool, typer.Option("--oldest-first", show_default="off", help="Oldest first.")
    ] = False,
) -> None:
    """List stored records (newest first) as a table."""
    with open_store(sink) as store:
        rows = store.summaries(query, limit=limit, newest_first=not oldest_first)
    if not rows:
        typer.echo("no records match", err=True)
        return
    say(_table(rows))


@app.command()
def show(
    record_id: Annotated[str, typer.Argument(help="Record id, or a unique prefix of one.")],
    sink: SinkUrl = None,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw", show_default="off", help="Write the exact bytes the provider sent to stdout."
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", show_default="off", help="The record as one JSON line (the shared schema)."
        ),
    ] = False,
) -> None:
    """Show one record: what it is, its derived fields and its decoded body."""
    with open_store(sink) as store:
        stored = resolve_record(store, record_id)
    if raw:
        sys.stdout.buffer.write(stored.record.body)
        sys.stdout.buffer.flush()
    elif as_json:
        from rawtap.consumer.read import jsonl_line

        sys.stdout.buffer.write(jsonl_line(stored, with_derived=True))
        sys.stdout.buffer.flush()
    else:
        say(render_show(stored))


@app.command()
@record_filters
def export(
    sink: SinkUrl = None,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            show_default=True,
            help="File to write; - for stdout (JSON Lines only).",
        ),
    ] = "-",
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            callback=choice("jsonl", "parquet"),
            show_default=True,
            help="jsonl, or parquet (needs pyarrow).",
        ),
    ] = "jsonl",
    with_derived: Annotated[
        bool,
        typer.Option(
            "--derived", show_default="off", help="JSON Lines: add a `derived` key to each line."
        ),
    ] = False,
    query: RecordQuery = ALL_RECORDS,
    progress: ProgressOpt = None,
) -> None:
    """Export records, oldest first: JSON Lines (the shared schema, bytes base64) or Parquet."""
    fmt = fmt.lower()
    if fmt == "parquet" and output == "-":
        raise ConfigError("Parquet needs a file: add --output records.parquet")
    with open_store(sink) as store:
        total = store.count_matching(query)
        with progress_bar("exporting", total, progress) as advance:
            if fmt == "parquet":
                report = export_parquet(store, query, output, progress=advance)
            elif output == "-":
                report = export_jsonl(
                    store, query, sys.stdout.buffer, with_derived=with_derived, progress=advance
                )
                sys.stdout.buffer.flush()
            else:
                with open(output, "wb") as out:
                    report = export_jsonl(
                        store, query, out, with_derived=with_derived, progress=advance
                    )
    if output != "-":
        typer.echo(f"exported {report.written} records to {output}", err=True)
    report_unreadable(report)


@app.command()
def purge(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            show_default="required",
            help="Delete records that started longer ago: 30d, 12h.",
        ),
    ],
    sink: SinkUrl = None,
) -> None:
    """Delete records older than a given age (PostgreSQL by day: whole partitions)."""
    age = parse_duration(older_than)
    with open_store(sink, read_only=False) as store:
        deleted = purge_older_than(store, age)
    typer.echo(f"deleted {deleted} records older than {older_than}")


@app.command()
@record_filters
def rederive(
    sink: SinkUrl = None,
    everything: Annotated[
        bool,
        typer.Option(
            "--all", show_default="off", help="Re-read every matching record, not only stale ones."
        ),
    ] = False,
    query: RecordQuery = ALL_RECORDS,
    progress: ProgressOpt = None,
) -> None:
    """Re-run the parsers over stored records (those from older parser versions, or --all)."""
    with open_store(sink, read_only=False) as store:
        total = store.count_matching(query)
        with progress_bar("re-deriving", total, progress) as advance:
            report = run_rederive(store, query, everything=everything, progress=advance)
    typer.echo(
        f"examined {report.written} records, updated {report.updated}, "
        f"unparseable {report.failures}"
    )
    report_unreadable(report)
