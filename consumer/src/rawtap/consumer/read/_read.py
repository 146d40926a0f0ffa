"""The read side as a Python API: find, show, export, re-derive. The CLI is a thin layer on it.

Everything takes a :class:`~rawtap.consumer.Store` (``open_sink(url)``) and a
:class:`~rawtap.consumer.RecordQuery`::

    with open_sink("postgresql://…", migrate=False) as store:
        stored = resolve_record(store, "0193a4b2")          # unique id prefix
        export_jsonl(store, RecordQuery(provider="openai"), open("out.jsonl", "wb"))
        rederive(store, RecordQuery())                        # after a parser change
"""

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from rawtap.consumer.derivation import Derived, derive, is_stale
from rawtap.consumer.store import RecordQuery, SinkError, Store, StoredRecord, clamp_i64
from rawtap.shared import BodyDecodeError, CodecError, ConfigError, Record, parse_duration

Progress = Callable[[int], None]
"""Called with the number of records just handled (for progress bars)."""

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_time(text: str, now_ns: int | None = None) -> int:
    """A wall-clock ns time from ``2h`` / ``30d`` (that long ago) or an ISO 8601 date or time.

    A time without a zone is UTC. Raises :class:`~rawtap.shared.ConfigError`.
    """
    now = datetime.now(UTC).timestamp() * 1e9 if now_ns is None else now_ns
    value = text.strip()
    if value and value[-1].lower() in "smhdw" and value[:-1].replace(".", "", 1).isdigit():
        # A duration longer than the clock reaches back is "the beginning": clamped like
        # dates past 2262, so no store is handed an integer beyond 64 bits.
        return clamp_i64(int(now - parse_duration(value) * 1e9))
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise ConfigError(
            f"bad time {text!r}: use a duration ago (2h, 30d) or an ISO date/time "
            "(2026-11-25, 2026-11-25T12:00:00Z)"
        ) from e
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    delta = parsed - epoch
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    return clamp_i64(ns)  # ns timestamps end in 2262; later times mean "the end"


def format_time(ns: int) -> str:
    """``2026-11-25T12:00:00.123Z`` for a wall-clock ns timestamp."""
    try:
        moment = datetime.fromtimestamp(ns / 1e9, UTC)
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def resolve_record(store: Store, id_or_prefix: str) -> StoredRecord:
    """The stored record whose id is ``id_or_prefix`` or starts with it (unique prefix).

    Raises :class:`SinkError` when none or several match, and
    :class:`~rawtap.shared.CodecError` when the row is not a readable record.
    """
    wanted = id_or_prefix.strip()
    if not wanted:
        raise ConfigError("give a record id (or a unique prefix of one)")
    stored = store.get_stored(wanted)
    if stored is not None:
        return stored
    matches = store.find_ids(wanted, limit=2)
    if not matches:
        raise SinkError(f"no record with id {wanted!r}")
    if len(matches) > 1:
        raise SinkError(f"id prefix {wanted!r} matches several records; give more characters")
    found = store.get_stored(matches[0])
    if found is None:  # purged between the two reads
        raise SinkError(f"no record with id {wanted!r}")
    return found


# -- show ------------------------------------------------------------------------------


def _ms(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:,.1f} ms"


def _num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def body_text(record: Record, limit: int | None = None) -> str:
    """The decoded body for people: pretty JSON, event-stream text, or a note for binary."""
    try:
        data = record.decoded_body()
    except BodyDecodeError as e:
        return f"<body cannot be decoded: {e}; use --raw for the bytes as sent>"
    if not data:
        return "<empty body>"
    stripped = data.lstrip()
    if stripped[:1] in (b"{", b"["):
        try:
            return orjson.dumps(orjson.loads(data), option=orjson.OPT_INDENT_2).decode()
        except orjson.JSONDecodeError:
            pass
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(data):,} bytes of binary data; use --raw for the bytes as sent>"
    if limit is not None and len(text) > limit:
        return text[:limit] + f"\n<… {len(text) - limit:,} more characters; use --raw>"
    return text


def render_show(stored: StoredRecord, body_limit: int | None = None) -> str:
    """The human view of one stored record: what it is, its derived fields, its decoded body."""
    r = stored.record
    d = stored.derived
    encoding = r.header("content-encoding")
    lines = [
        f"record     {r.record_id}",
        f"provider   {r.provider}  {r.method or ''} {r.url or ''}".rstrip(),
        f"status     {r.status if r.status is not None else '-'}  {r.end_state.value}"
        + (f"  error: {r.error}" if r.error else ""),
        f"body       {len(r.body):,} bytes"
        + (f" ({encoding})" if encoding else "")
        + (f", {len(r.chunks)} chunks" if r.stream or r.chunks else "")
        + (f", truncated from {r.original_size:,}" if r.truncated and r.original_size else ""),
        f"started    {format_time(r.started_at_ns)}  first byte {_ms(r.first_byte_ns)}"
        f"  ended {_ms(r.ended_ns)}",
        f"session    {r.session_id or '-'}  service {r.service or '-'}"
        f"  producer {r.producer_id} seq {r.seq}",
    ]
    if r.traceparent:
        lines.append(f"trace      {r.traceparent}")
    if r.metadata:
        lines.append(f"metadata   {orjson.dumps(r.metadata).decode()}")
    lines.append(f"persisted  {format_time(stored.persisted_at_ns)}")
    lines.extend(render_derived(d))
    lines.append("")
    lines.append(body_text(r, body_limit))
    return "\n".join(lines)


def render_derived(d: Derived | None) -> list[str]:
    """The derived-field lines of ``rawtap show``."""
    if d is None:
        return ["derived    (not derived yet; run `rawtap rederive`)"]
    parser = f"{d.parser} v{d.parser_version}" if d.parser else "no parser applies"
    lines = [
        f"derived    {parser}",
        f"  model    {d.model or '-'}   response {d.response_id or '-'}"
        f"   request id {d.request_id or '-'}",
        f"  tokens   in {_num(d.input_tokens)}  out {_num(d.output_tokens)}"
        f"  cached {_num(d.cached_tokens)}  reasoning {_num(d.reasoning_tokens)}",
        f"  finish   {d.finish_reason or '-'}   time to first token {_ms(d.ttft_ns)}",
    ]
    if d.provider_error:
        lines.append(f"  provider error  {d.provider_error}")
    if d.parse_error:
        lines.append(f"  parse error     {d.parse_error}")
    lines.extend(
        f"  tool call {call.name or '?'}({call.arguments})  id {call.id or '-'}"
        for call in d.tool_calls
    )
    if d.text:
        lines.append("  text     " + d.text.replace("\n", "\n           "))
    return lines


# -- export ----------------------------------------------------------------------------


@dataclass
class ExportReport:
    """What an export (or re-derivation) did."""

    written: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    """(record id, reason) of rows that are not valid records and were left out."""
    updated: int = 0
    """Re-derivation only: rows whose derived fields changed."""
    failures: int = 0
    """Re-derivation only: bodies the parsers could not read."""

    def note_unreadable(self, record_id: str, error: CodecError) -> None:
        """Remember a row left out (``on_unreadable`` callback)."""
        self.unreadable.append((record_id, str(error)))


def jsonl_line(stored: StoredRecord, with_derived: bool = False) -> bytes:
    """One JSON Lines line: the record in the shared schema (bytes base64), maybe + ``derived``."""
    line = stored.record.model_dump_json().encode()
    if with_derived:
        extra = b"null" if stored.derived is None else stored.derived.model_dump_json().encode()
        line = line[:-1] + b',"derived":' + extra + b"}"
    return line + b"\n"


def export_jsonl(
    store: Store,
    query: RecordQuery,
    out: IO[bytes],
    *,
    with_derived: bool = False,
    progress: Progress | None = None,
) -> ExportReport:
    """Write matching records to ``out`` as JSON Lines, oldest first; unreadable rows are skipped.

    Each line is :meth:`Record.model_dump_json` (``Record.model_validate_json`` reads it back).
    """
    report = ExportReport()
    for stored in store.iter_records(query, on_unreadable=report.note_unreadable):
        out.write(jsonl_line(stored, with_derived))
        report.written += 1
        if progress is not None:
            progress(1)
    return report


def _parquet_schema() -> Any:
    try:
        import pyarrow as pa
    except ImportError as e:
        raise ConfigError(
            "Parquet export needs pyarrow: pip install 'rawtap-consumer[parquet]'"
        ) from e
    header = pa.list_(pa.struct([("name", pa.string()), ("value", pa.string())]))
    chunk = pa.list_(pa.struct([("offset_ns", pa.int64()), ("size", pa.int64())]))
    tool_call = pa.list_(
        pa.struct([("id", pa.string()), ("name", pa.string()), ("arguments", pa.string())])
    )
    ints = ("seq", "attempt", "status", "started_at_ns", "first_byte_ns", "ended_ns")
    fields = [
        ("schema_version", pa.int32()),
        ("record_id", pa.string()),
        ("producer_id", pa.string()),
        ("session_id", pa.string()),
        ("service", pa.string()),
        ("traceparent", pa.string()),
        ("tracestate", pa.string()),
        ("call_id", pa.string()),
        ("provider", pa.string()),
        ("method", pa.string()),
        ("url", pa.string()),
        ("request_headers", header),
        ("request_body", pa.binary()),
        ("metadata", pa.string()),
        ("response_headers", header),
        ("body", pa.binary()),
        ("body_form", pa.string()),
        ("stream", pa.bool_()),
        ("chunks", chunk),
        ("captured_at_ns", pa.int64()),
        ("end_state", pa.string()),
        ("error", pa.string()),
        ("truncated", pa.bool_()),
        ("original_size", pa.int64()),
        ("original_request_size", pa.int64()),
        *[(name, pa.int64()) for name in ints],
        ("persisted_at_ns", pa.int64()),
        ("parser", pa.string()),
        ("parser_version", pa.int32()),
        ("model", pa.string()),
        ("response_id", pa.string()),
        ("request_id", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cached_tokens", pa.int64()),
        ("reasoning_tokens", pa.int64()),
        ("finish_reason", pa.string()),
        ("ttft_ns", pa.int64()),
        ("text", pa.string()),
        ("tool_calls", tool_call),
        ("provider_error", pa.string()),
        ("parse_error", pa.string()),
    ]
    return pa.schema(fields)


def _parquet_row(stored: StoredRecord) -> dict[str, Any]:
    row = stored.record.model_dump()
    row["end_state"] = stored.record.end_state.value
    row["body_form"] = stored.record.body_form.value
    row["metadata"] = orjson.dumps(row["metadata"]).decode()
    row["request_headers"] = [{"name": k, "value": v} for k, v in stored.record.request_headers]
    row["response_headers"] = [{"name": k, "value": v} for k, v in stored.record.response_headers]
    row["chunks"] = [{"offset_ns": c.offset_ns, "size": c.size} for c in stored.record.chunks]
    row["persisted_at_ns"] = stored.persisted_at_ns
    derived = stored.derived.model_dump() if stored.derived is not None else {}
    for name in Derived.model_fields:
        row[name] = derived.get(name)
    row["tool_calls"] = derived.get("tool_calls") or []
    return row


def export_parquet(
    store: Store,
    query: RecordQuery,
    path: str,
    *,
    progress: Progress | None = None,
    row_group_size: int = 5000,
) -> ExportReport:
    """Write matching records to a Parquet file (pyarrow required): one row per record.

    Bodies are binary columns, headers and chunks lists of structs, metadata a JSON
    string, and the derived fields their own columns.
    """
    schema = _parquet_schema()
    import pyarrow as pa
    import pyarrow.parquet as pq

    report = ExportReport()
    batch: list[dict[str, Any]] = []
    with pq.ParquetWriter(path, schema) as writer:
        for stored in store.iter_records(query, on_unreadable=report.note_unreadable):
            batch.append(_parquet_row(stored))
            if len(batch) >= row_group_size:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                report.written += len(batch)
                if progress is not None:
                    progress(len(batch))
                batch = []
        if batch or report.written == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            report.written += len(batch)
            if progress is not None:
                progress(len(batch))
    return report


# -- rederive --------------------------------------------------------------------------


def rederive(
    store: Store,
    query: RecordQuery,
    *,
    everything: bool = False,
    batch_size: int = 500,
    progress: Progress | None = None,
) -> ExportReport:
    """Re-run the parsers over stored records and store what changed.

    By default only records never derived or derived by an older parser version
    are re-read; ``everything=True`` re-reads all that match ``query``.
    """
    report = ExportReport()
    pending: list[tuple[str, Derived]] = []
    for stored in store.iter_records(
        query, batch_size=batch_size, on_unreadable=report.note_unreadable
    ):
        report.written += 1
        if progress is not None:
            progress(1)
        if not everything and not is_stale(stored.derived):
            continue
        fresh = derive(stored.record)
        report.failures += fresh.failed
        if fresh != stored.derived:
            pending.append((stored.record.record_id, fresh))
        if len(pending) >= batch_size:
            report.updated += store.set_derived(pending)
            pending = []
    if pending:
        report.updated += store.set_derived(pending)
    return report


def iter_matching(store: Store, query: RecordQuery) -> Iterator[Record]:
    """The readable records matching ``query``, oldest first (unreadable rows skipped)."""
    for stored in store.iter_records(query, on_unreadable=lambda _id, _e: None):
        yield stored.record
